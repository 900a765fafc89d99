//! gRPC over h2: length-prefixed message frames, status headers and trailers, and the response
//! half of a stream (headers first, then messages, then the status).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::server::SendResponse;
use h2::SendStream;
use http::{HeaderMap, HeaderValue, Response};

/// gRPC status codes used by the transport itself.
pub(super) const UNIMPLEMENTED: u32 = 12;
pub(super) const RESOURCE_EXHAUSTED: u32 = 8;
pub(super) const INTERNAL: u32 = 13;
pub(super) const NOT_FOUND: u32 = 5;
pub(super) const UNAVAILABLE: u32 = 14;

pub(super) fn grpc_headers() -> Response<()> {
    let mut response = Response::new(());
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/grpc"));
    response
}

pub(super) fn status_headers(map: &mut HeaderMap, code: u32, message: &str) {
    map.insert("grpc-status", HeaderValue::from(code));
    if !message.is_empty() {
        // grpc-message is percent-encoded; keep printable ASCII but '%', encode the rest.
        let mut encoded = String::with_capacity(message.len());
        for byte in message.bytes() {
            if (0x20..0x7f).contains(&byte) && byte != b'%' {
                encoded.push(byte as char);
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
        if let Ok(value) = HeaderValue::from_str(&encoded) {
            map.insert("grpc-message", value);
        }
    }
}

/// A response that is only headers carrying the status (gRPC's "trailers-only").
pub(super) fn trailers_only(respond: &mut SendResponse<Bytes>, code: u32, message: &str) {
    let mut response = grpc_headers();
    status_headers(response.headers_mut(), code, message);
    let _ = respond.send_response(response, true);
}

pub(super) fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(message.len() + 5);
    framed.put_u8(0);
    framed.put_u32(message.len() as u32);
    framed.put_slice(message);
    framed.freeze()
}

/// The next whole message of a gRPC length-prefixed stream, if one is buffered.
pub(super) fn next_message(buffer: &mut BytesMut, limit: usize) -> Result<Option<Bytes>, (u32, String)> {
    if buffer.len() < 5 {
        return Ok(None);
    }
    if buffer[0] != 0 {
        return Err((UNIMPLEMENTED, "compressed messages are not supported".into()));
    }
    let length = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
    if length > limit {
        return Err((RESOURCE_EXHAUSTED, format!("received message larger than max ({length} vs. {limit})")));
    }
    if buffer.len() < 5 + length {
        buffer.reserve(5 + length - buffer.len());
        return Ok(None);
    }
    buffer.advance(5);
    Ok(Some(buffer.split_to(length).freeze()))
}

/// The response half of one stream.
pub(super) enum Sender {
    Pending(SendResponse<Bytes>),
    Open(SendStream<Bytes>),
    Done,
}

impl Sender {
    pub(super) fn poll_reset(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let polled = match self {
            Sender::Pending(respond) => respond.poll_reset(cx),
            Sender::Open(stream) => stream.poll_reset(cx),
            Sender::Done => return std::task::Poll::Pending,
        };
        polled.map(|_| ())
    }

    pub(super) fn send(&mut self, message: &[u8]) {
        if let Sender::Pending(respond) = self {
            match respond.send_response(grpc_headers(), false) {
                Ok(stream) => *self = Sender::Open(stream),
                Err(_) => {
                    *self = Sender::Done;
                    return;
                }
            }
        }
        if let Sender::Open(stream) = self {
            // h2 buffers what the peer's window does not yet take; messages are bounded.
            let _ = stream.send_data(frame(message), false);
        }
    }

    pub(super) fn close(&mut self, code: u32, message: &str) {
        match std::mem::replace(self, Sender::Done) {
            Sender::Pending(mut respond) => trailers_only(&mut respond, code, message),
            Sender::Open(mut stream) => {
                let mut trailers = HeaderMap::new();
                status_headers(&mut trailers, code, message);
                let _ = stream.send_trailers(trailers);
            }
            Sender::Done => {}
        }
    }
}
