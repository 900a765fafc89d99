//! `grpc.health.v1.Health` on the runtime's thread, from the one serving status Python sets
//! (`Shared::serving`): `Check` answers it once; `Watch` streams it (the status at once, then
//! each change) until the client cancels or the server drains, so probes never wait on the
//! Python loop. Services: "" and the ext_proc service; any other is unknown (`Check`: NOT_FOUND;
//! `Watch`: SERVICE_UNKNOWN, streamed, as the protocol asks).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use http::HeaderMap;
use tokio::sync::watch;

use super::grpc::{
    frame, grpc_headers, next_message, status_headers, trailers_only, Sender, INTERNAL, NOT_FOUND,
    RESOURCE_EXHAUSTED, UNAVAILABLE,
};
use super::handoff::{Counted, Shared};

pub(super) const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
pub(super) const WATCH_PATH: &str = "/grpc.health.v1.Health/Watch";
const EXT_PROC_SERVICE: &[u8] = b"envoy.service.ext_proc.v3.ExternalProcessor";
const MAX_REQUEST_BYTES: usize = 64 << 10;

/// `HealthCheckResponse.ServingStatus`.
const SERVING: u8 = 1;
const NOT_SERVING: u8 = 2;
const SERVICE_UNKNOWN: u8 = 3;

/// Why no status is sent: the client went away (nothing to answer), or a gRPC error.
enum Refused {
    Gone,
    Status(u32, &'static str),
}

/// The service a `HealthCheckRequest` names, read whole (the client sends one message and
/// half-closes, for `Check` and `Watch` alike).
async fn read_service(body: &mut RecvStream) -> Result<Bytes, Refused> {
    let mut buffer = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let data = chunk.map_err(|_| Refused::Gone)?;
        let _ = body.flow_control().release_capacity(data.len());
        buffer.extend_from_slice(&data);
        if buffer.len() > MAX_REQUEST_BYTES {
            return Err(Refused::Status(RESOURCE_EXHAUSTED, "request too large"));
        }
    }
    let malformed = Refused::Status(INTERNAL, "malformed request");
    let Ok(Some(request)) = next_message(&mut buffer, MAX_REQUEST_BYTES) else { return Err(malformed) };
    // HealthCheckRequest { string service = 1; }: the only field, written at most once.
    match request.as_ref() {
        [] => Ok(Bytes::new()),
        [0x0a, length, rest @ ..] if (*length as usize) == rest.len() && *length < 0x80 => {
            Ok(request.slice(2..))
        }
        _ => Err(malformed),
    }
}

/// The service a request names, or `None` once the request was refused (answered with its gRPC
/// error) or the client went away: the prologue of `Check` and `Watch`.
async fn requested_service(body: &mut RecvStream, respond: &mut SendResponse<Bytes>) -> Option<Bytes> {
    match read_service(body).await {
        Ok(service) => Some(service),
        Err(Refused::Gone) => None,
        Err(Refused::Status(code, message)) => {
            trailers_only(respond, code, message);
            None
        }
    }
}

fn known(service: &[u8]) -> bool {
    service.is_empty() || service == EXT_PROC_SERVICE
}

fn status(serving: bool) -> u8 {
    if serving {
        SERVING
    } else {
        NOT_SERVING
    }
}

/// `HealthCheckResponse { ServingStatus status = 1; }`.
fn response(status: u8) -> [u8; 2] {
    [0x08, status]
}

pub(super) async fn check(shared: Arc<Shared>, mut body: RecvStream, mut respond: SendResponse<Bytes>) {
    let Some(service) = requested_service(&mut body, &mut respond).await else { return };
    if !known(&service) {
        return trailers_only(&mut respond, NOT_FOUND, "unknown service");
    }
    let serving = *shared.serving.borrow();
    let Ok(mut stream) = respond.send_response(grpc_headers(), false) else { return };
    let _ = stream.send_data(frame(&response(status(serving))), false);
    let mut trailers = HeaderMap::new();
    status_headers(&mut trailers, 0, "");
    let _ = stream.send_trailers(trailers);
}

/// `Watch`: the current status at once, then a message whenever it changes (statuses set and
/// set back between two wakes are one change, or none: the protocol sends the latest). The
/// stream ends when the client cancels it, or with UNAVAILABLE once the server drains (after
/// NOT_SERVING: `stop_accepting` and `shutdown` clear the status before they signal), so a
/// watch never holds a draining connection open.
pub(super) async fn watch(
    shared: Arc<Shared>,
    mut body: RecvStream,
    mut respond: SendResponse<Bytes>,
    mut stopping: watch::Receiver<bool>,
) {
    let Some(service) = requested_service(&mut body, &mut respond).await else { return };
    let _watching = Counted::new(&shared.health_watches);
    let known = known(&service);
    let mut serving = shared.serving.subscribe();
    let mut sender = Sender::Pending(respond);
    let mut sent = None;
    loop {
        let now = if known { status(*serving.borrow_and_update()) } else { SERVICE_UNKNOWN };
        if sent != Some(now) {
            sender.send(&response(now));
            sent = Some(now);
        }
        if matches!(sender, Sender::Done) {
            return; // the response could not start: the stream is gone
        }
        if *stopping.borrow_and_update() {
            return sender.close(UNAVAILABLE, "server shutting down");
        }
        tokio::select! {
            // `serving`'s sender lives in `shared`, which this task holds: it never closes.
            _ = serving.changed(), if known => {}
            changed = stopping.changed() => {
                if changed.is_err() {
                    return sender.close(UNAVAILABLE, "server shutting down");
                }
            }
            () = std::future::poll_fn(|cx| sender.poll_reset(cx)) => return, // the client cancelled
        }
    }
}
