//! The native ext_proc transport: an HTTP/2 gRPC server on a small tokio runtime that carries
//! Envoy's `ExternalProcessor/Process` streams as raw message bytes, while Python keeps every
//! decision (`vsr.extproc.native`).
//!
//! Rust threads never take the GIL. Each stream event (opened, one message, half-closed, reset)
//! goes into one queue, and the first event after a drain writes an eventfd that the asyncio loop
//! watches (`loop.add_reader`); Python takes the whole batch in one `drain()` call. Python answers
//! with `send(stream, bytes)` and `close(stream, status, message)`, which only push into the
//! stream's channel. No protobuf here: messages are the bytes of a gRPC length-prefixed frame,
//! parsed and serialized by the generated Python classes. `grpc.health.v1.Health/Check` is
//! answered here, from the serving flag Python sets, so probes never wait on the Python loop.
//!
//! h2 is used directly (not tonic): the transport needs only the gRPC framing, the status
//! trailers and stream resets, and h2 gives all three without a codec layer or protobuf codegen.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::server::{Builder, SendResponse};
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Request, Response};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

const PROCESS_PATH: &str = "/envoy.service.ext_proc.v3.ExternalProcessor/Process";
const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
const EXT_PROC_SERVICE: &[u8] = b"envoy.service.ext_proc.v3.ExternalProcessor";

/// Event kinds, as `drain()` reports them.
const OPENED: u8 = 0;
const MESSAGE: u8 = 1;
const HALF_CLOSED: u8 = 2;
const RESET: u8 = 3;

/// gRPC status codes used by the transport itself.
const UNIMPLEMENTED: u32 = 12;
const RESOURCE_EXHAUSTED: u32 = 8;
const INTERNAL: u32 = 13;
const NOT_FOUND: u32 = 5;
const UNAVAILABLE: u32 = 14;

enum Event {
    Opened(u64, String),
    Message(u64, Bytes),
    HalfClosed(u64),
    Reset(u64),
}

enum Out {
    Message(Bytes),
    Close(u32, String),
}

struct Shared {
    events: Mutex<Vec<Event>>,
    eventfd: i32,
    streams: Mutex<HashMap<u64, mpsc::UnboundedSender<Out>>>,
    /// What Python sent since the dispatcher last ran: one wake-up of the runtime per batch,
    /// not per message (a wake from a foreign thread is a futex syscall under the GIL).
    outbound: Mutex<Vec<(u64, Out)>>,
    outbound_ready: tokio::sync::Notify,
    next_stream: AtomicU64,
    serving: AtomicBool,
    max_message_bytes: usize,
}

impl Shared {
    /// Queue an event; the first one after a drain wakes the loop. The write happens under the
    /// lock, so a drain (which reads the eventfd before it takes the queue) never loses one.
    fn push(&self, event: Event) {
        let mut events = self.events.lock().unwrap();
        events.push(event);
        if events.len() == 1 {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes from a live u64 to an fd this struct owns.
            unsafe { libc::write(self.eventfd, (&one as *const u64).cast(), 8) };
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: the fd was created by `eventfd` in `new` and is closed only here.
        unsafe { libc::close(self.eventfd) };
    }
}

fn grpc_headers() -> Response<()> {
    let mut response = Response::new(());
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/grpc"));
    response
}

fn status_headers(map: &mut HeaderMap, code: u32, message: &str) {
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
fn trailers_only(respond: &mut SendResponse<Bytes>, code: u32, message: &str) {
    let mut response = grpc_headers();
    status_headers(response.headers_mut(), code, message);
    let _ = respond.send_response(response, true);
}

fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(message.len() + 5);
    framed.put_u8(0);
    framed.put_u32(message.len() as u32);
    framed.put_slice(message);
    framed.freeze()
}

/// The next whole message of a gRPC length-prefixed stream, if one is buffered.
fn next_message(buffer: &mut BytesMut, limit: usize) -> Result<Option<Bytes>, (u32, String)> {
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

enum Sender {
    Pending(SendResponse<Bytes>),
    Open(SendStream<Bytes>),
    Done,
}

impl Sender {
    fn poll_reset(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let polled = match self {
            Sender::Pending(respond) => respond.poll_reset(cx),
            Sender::Open(stream) => stream.poll_reset(cx),
            Sender::Done => return std::task::Poll::Pending,
        };
        polled.map(|_| ())
    }

    fn send(&mut self, message: &[u8]) {
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

    fn close(&mut self, code: u32, message: &str) {
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

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, mut stopping: watch::Receiver<bool>) {
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

/// Hands what Python sent to the streams' tasks, a batch per wake-up.
async fn dispatch(shared: Arc<Shared>) {
    loop {
        shared.outbound_ready.notified().await;
        let batch = std::mem::take(&mut *shared.outbound.lock().unwrap());
        let streams = shared.streams.lock().unwrap();
        for (id, out) in batch {
            if let Some(tx) = streams.get(&id) {
                let _ = tx.send(out);
            }
        }
    }
}

fn resolve(host: &str, port: u16) -> PyResult<SocketAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .map_err(|error| PyOSError::new_err(format!("cannot resolve {host}: {error}")))?
        .next()
        .ok_or_else(|| PyOSError::new_err(format!("cannot resolve {host}")))
}

/// The native ext_proc gRPC server (see the module documentation).
#[pyclass(name = "ExtProcServer", module = "vsr._core")]
pub struct PyExtProcServer {
    shared: Arc<Shared>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    stopping: watch::Sender<bool>,
    port: u16,
}

impl PyExtProcServer {
    fn queue(&self, items: impl IntoIterator<Item = (u64, Out)>) {
        let mut outbound = self.shared.outbound.lock().unwrap();
        let was_empty = outbound.is_empty();
        outbound.extend(items);
        if was_empty && !outbound.is_empty() {
            // A permit is stored if the dispatcher is busy, so no batch is left behind.
            self.shared.outbound_ready.notify_one();
        }
    }
}

#[pymethods]
impl PyExtProcServer {
    /// Bind `host:port` (port 0: any) and start serving on `threads` background threads.
    #[new]
    #[pyo3(signature = (host, port, *, reuse_port = false, max_message_bytes = 4 << 20, threads = 1))]
    fn new(
        host: &str,
        port: u16,
        reuse_port: bool,
        max_message_bytes: usize,
        threads: usize,
    ) -> PyResult<Self> {
        if threads == 0 {
            return Err(PyValueError::new_err("threads must be at least 1"));
        }
        let address = resolve(host, port)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("vsr-extproc")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|error| PyOSError::new_err(error.to_string()))?;
        let listener = runtime
            .block_on(async {
                let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
                socket.set_reuseaddr(true)?;
                if reuse_port {
                    socket.set_reuseport(true)?;
                }
                socket.set_nodelay(true)?;
                socket.bind(address)?;
                socket.listen(1024)
            })
            .map_err(|error| PyOSError::new_err(format!("cannot listen on {address}: {error}")))?;
        let port = listener.local_addr().map_err(|error| PyOSError::new_err(error.to_string()))?.port();
        // SAFETY: plain syscall; the result is checked.
        let eventfd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if eventfd < 0 {
            return Err(PyOSError::new_err(std::io::Error::last_os_error().to_string()));
        }
        let shared = Arc::new(Shared {
            events: Mutex::new(Vec::new()),
            eventfd,
            streams: Mutex::new(HashMap::new()),
            outbound: Mutex::new(Vec::new()),
            outbound_ready: tokio::sync::Notify::new(),
            next_stream: AtomicU64::new(1),
            serving: AtomicBool::new(false),
            max_message_bytes,
        });
        let (stopping, stop_watch) = watch::channel(false);
        runtime.spawn(accept_loop(shared.clone(), listener, stop_watch));
        runtime.spawn(dispatch(shared.clone()));
        Ok(Self { shared, runtime: Mutex::new(Some(runtime)), stopping, port })
    }

    /// The bound port.
    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    /// The eventfd that becomes readable when events wait (for `loop.add_reader`).
    fn fileno(&self) -> i32 {
        self.shared.eventfd
    }

    /// Every waiting event, oldest first, as `(kind, stream, payload)`: kind 0 opened (payload:
    /// the peer), 1 a message (its bytes), 2 half-closed, 3 reset (both None).
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut counter = 0u64;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN (nothing pending) is fine.
        unsafe { libc::read(self.shared.eventfd, (&mut counter as *mut u64).cast(), 8) };
        let events = std::mem::take(&mut *self.shared.events.lock().unwrap());
        let list = PyList::empty(py);
        for event in events {
            let item = match event {
                Event::Opened(id, peer) => {
                    (OPENED, id, PyString::new(py, &peer).into_any()).into_pyobject(py)?
                }
                Event::Message(id, data) => {
                    (MESSAGE, id, PyBytes::new(py, &data).into_any()).into_pyobject(py)?
                }
                Event::HalfClosed(id) => (HALF_CLOSED, id, py.None().into_bound(py)).into_pyobject(py)?,
                Event::Reset(id) => (RESET, id, py.None().into_bound(py)).into_pyobject(py)?,
            };
            list.append::<Bound<'py, PyTuple>>(item)?;
        }
        Ok(list)
    }

    /// Queue one response message on a stream (dropped if the stream is gone).
    fn send(&self, stream: u64, message: &[u8]) {
        self.queue([(stream, Out::Message(Bytes::copy_from_slice(message)))]);
    }

    /// End a stream with a gRPC status (nothing if the stream is gone).
    #[pyo3(signature = (stream, code = 0, message = ""))]
    fn close(&self, stream: u64, code: u32, message: &str) {
        self.queue([(stream, Out::Close(code, message.to_owned()))]);
    }

    /// Queue several items at once, in order: `(stream, message, 0, "")` sends `message`,
    /// `(stream, None, code, text)` ends the stream. One lock and at most one wake of the
    /// runtime for the lot: sent one by one, the runtime's thread can wake and take the first
    /// before the second is queued, and each wake is a syscall that often switches threads.
    fn send_batch(&self, items: Vec<(u64, Option<Vec<u8>>, u32, String)>) {
        self.queue(items.into_iter().map(|(stream, message, code, text)| match message {
            Some(message) => (stream, Out::Message(Bytes::from(message))),
            None => (stream, Out::Close(code, text)),
        }));
    }

    /// What `grpc.health.v1.Health/Check` answers (for "" and the ext_proc service).
    fn set_serving(&self, serving: bool) {
        self.shared.serving.store(serving, Ordering::Release);
    }

    /// Streams open in the transport.
    fn open_streams(&self) -> usize {
        self.shared.streams.lock().unwrap().len()
    }

    /// Close the port and send GOAWAY on every connection; open streams go on.
    fn stop_accepting(&self) {
        let _ = self.stopping.send(true);
    }

    /// Stop everything: open streams end with UNAVAILABLE, connections close.
    fn shutdown(&self, py: Python<'_>) {
        let _ = self.stopping.send(true);
        self.shared.streams.lock().unwrap().clear();
        let runtime = self.runtime.lock().unwrap().take();
        if let Some(runtime) = runtime {
            py.detach(|| runtime.shutdown_timeout(Duration::from_secs(1)));
        }
    }
}
