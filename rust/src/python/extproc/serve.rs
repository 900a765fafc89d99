//! Connections and streams on the runtime's thread: the accept loop, one task per HTTP/2
//! connection, one per ext_proc stream (its messages to Python as events, Python's answers from
//! its channel to the wire), and gRPC health's two methods (`health`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use h2::server::{Builder, SendResponse};
use h2::RecvStream;
use http::Request;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::grpc::{next_message, trailers_only, Sender, INTERNAL, UNAVAILABLE, UNIMPLEMENTED};
use super::handoff::{Counted, Event, Out, Shared};
use super::health;

const PROCESS_PATH: &str = "/envoy.service.ext_proc.v3.ExternalProcessor/Process";

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

async fn serve_connection(
    shared: Arc<Shared>,
    socket: TcpStream,
    peer: SocketAddr,
    mut stopping: watch::Receiver<bool>,
) {
    let _open = Counted::new(&shared.connections);
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
                Some(Ok((request, respond))) => {
                    spawn_stream(&shared, &peer, request, respond, &stopping)
                }
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
    stopping: &watch::Receiver<bool>,
) {
    let (parts, body) = request.into_parts();
    let shared = shared.clone();
    match parts.uri.path() {
        PROCESS_PATH => {
            tokio::spawn(process_stream(shared, peer.to_owned(), body, respond));
        }
        health::CHECK_PATH => {
            tokio::spawn(health::check(shared, body, respond));
        }
        health::WATCH_PATH => {
            tokio::spawn(health::watch(shared, body, respond, stopping.clone()));
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
