//! Connections and streams on the runtime's thread: the accept loop, one task per HTTP/2
//! connection, one per ext_proc stream (its messages to Python as events, Python's answers from
//! its channel to the wire) and gRPC health checks answered from the serving flag.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use h2::server::{Builder, SendResponse};
use h2::RecvStream;
use http::{HeaderMap, Request};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::grpc::{
    frame, grpc_headers, next_message, status_headers, trailers_only, Sender, INTERNAL, NOT_FOUND,
    RESOURCE_EXHAUSTED, UNAVAILABLE, UNIMPLEMENTED,
};
use super::handoff::{Event, Out, Shared};

const PROCESS_PATH: &str = "/envoy.service.ext_proc.v3.ExternalProcessor/Process";
const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
const EXT_PROC_SERVICE: &[u8] = b"envoy.service.ext_proc.v3.ExternalProcessor";

async fn process_stream(
    shared: Arc<Shared>,
    peer: String,
    mut body: RecvStream,
    respond: SendResponse<Bytes>,
) {
    let id = shared.next_stream.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::unbounded_channel();
    shared.streams.lock().unwrap().insert(id, tx);
    shared.push(Event::Opened(id, peer));
    let mut sender = Sender::Pending(respond);
    let mut buffer = BytesMut::new();
    let mut receiving = true;
    loop {
        tokio::select! {
            biased;
            out = rx.recv() => match out {
                Some(Out::Message(message)) => sender.send(&message),
                Some(Out::Close(code, message)) => {
                    sender.close(code, &message);
                    break;
                }
                // The server is shutting down without a close from Python.
                None => {
                    sender.close(UNAVAILABLE, "server shutting down");
                    break;
                }
            },
            chunk = body.data(), if receiving => match chunk {
                Some(Ok(data)) => {
                    let _ = body.flow_control().release_capacity(data.len());
                    buffer.extend_from_slice(&data);
                    let mut failed = None;
                    loop {
                        match next_message(&mut buffer, shared.max_message_bytes) {
                            Ok(Some(message)) => shared.push(Event::Message(id, message)),
                            Ok(None) => break,
                            Err(error) => {
                                failed = Some(error);
                                break;
                            }
                        }
                    }
                    if let Some((code, message)) = failed {
                        // The handler is cancelled as for a reset; the client gets the status.
                        shared.push(Event::Reset(id));
                        sender.close(code, &message);
                        break;
                    }
                }
                Some(Err(_)) => {
                    shared.push(Event::Reset(id));
                    break;
                }
                None => {
                    receiving = false;
                    if !buffer.is_empty() {
                        shared.push(Event::Reset(id));
                        sender.close(INTERNAL, "incomplete message at end of stream");
                        break;
                    }
                    shared.push(Event::HalfClosed(id));
                }
            },
            () = std::future::poll_fn(|cx| sender.poll_reset(cx)) => {
                shared.push(Event::Reset(id));
                break;
            }
        }
    }
    shared.streams.lock().unwrap().remove(&id);
}

async fn health_check(shared: Arc<Shared>, mut body: RecvStream, mut respond: SendResponse<Bytes>) {
    let mut buffer = BytesMut::new();
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(data) => {
                let _ = body.flow_control().release_capacity(data.len());
                buffer.extend_from_slice(&data);
                if buffer.len() > 64 << 10 {
                    return trailers_only(&mut respond, RESOURCE_EXHAUSTED, "request too large");
                }
            }
            Err(_) => return,
        }
    }
    let request = match next_message(&mut buffer, 64 << 10) {
        Ok(Some(request)) => request,
        _ => return trailers_only(&mut respond, INTERNAL, "malformed request"),
    };
    // HealthCheckRequest { string service = 1; }: the only field, written at most once.
    let service: &[u8] = match request.as_ref() {
        [] => b"",
        [0x0a, length, rest @ ..] if (*length as usize) == rest.len() && *length < 0x80 => rest,
        _ => return trailers_only(&mut respond, INTERNAL, "malformed request"),
    };
    if !service.is_empty() && service != EXT_PROC_SERVICE {
        return trailers_only(&mut respond, NOT_FOUND, "unknown service");
    }
    // HealthCheckResponse { ServingStatus status = 1; }: SERVING = 1, NOT_SERVING = 2.
    let status = if shared.serving.load(Ordering::Acquire) { 1 } else { 2 };
    let Ok(mut stream) = respond.send_response(grpc_headers(), false) else { return };
    let _ = stream.send_data(frame(&[0x08, status]), false);
    let mut trailers = HeaderMap::new();
    status_headers(&mut trailers, 0, "");
    let _ = stream.send_trailers(trailers);
}

async fn serve_connection(
    shared: Arc<Shared>,
    socket: TcpStream,
    peer: SocketAddr,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    let handshake = Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .max_concurrent_streams(u32::MAX)
        .max_header_list_size(1 << 20)
        .max_send_buffer_size(shared.max_message_bytes + (1 << 20))
        .handshake::<_, Bytes>(socket)
        .await;
    let Ok(mut connection) = handshake else { return };
    let peer = format!("ipv{}:{peer}", if peer.is_ipv4() { 4 } else { 6 });
    let mut draining = *stopping.borrow();
    if draining {
        connection.graceful_shutdown();
    }
    loop {
        tokio::select! {
            accepted = connection.accept() => match accepted {
                Some(Ok((request, respond))) => spawn_stream(&shared, &peer, request, respond),
                _ => break,
            },
            changed = stopping.changed(), if !draining => {
                if changed.is_err() || *stopping.borrow() {
                    draining = true;
                    connection.graceful_shutdown();
                }
            }
        }
    }
}

fn spawn_stream(
    shared: &Arc<Shared>,
    peer: &str,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let (parts, body) = request.into_parts();
    let shared = shared.clone();
    match parts.uri.path() {
        PROCESS_PATH => {
            tokio::spawn(process_stream(shared, peer.to_owned(), body, respond));
        }
        HEALTH_CHECK_PATH => {
            tokio::spawn(health_check(shared, body, respond));
        }
        _ => trailers_only(&mut respond, UNIMPLEMENTED, "method not found"),
    }
}

pub(super) async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((socket, peer)) = accepted {
                    tokio::spawn(serve_connection(shared.clone(), socket, peer, stopping.clone()));
                }
            }
            changed = stopping.changed() => {
                if changed.is_err() || *stopping.borrow() {
                    return; // dropping the listener closes the port
                }
            }
        }
    }
}
