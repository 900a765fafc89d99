//! The native ext_proc transport: an HTTP/2 gRPC server on a small tokio runtime that carries Envoy's `ExternalProcessor/Process` streams as raw message bytes, while Python keeps
//! every decision (`vsr.extproc.native`).
//!
//! Rust threads never take the GIL. Each stream event (opened, one message, half-closed, reset)
//! goes into one queue that Python takes whole with `drain()`, woken by an eventfd the asyncio
//! loop watches (`loop.add_reader`); Python answers with `send_batch` (or `send`/`close`), which
//! only queue (`handoff`: who wakes whom, and when). No protobuf here: messages are the bytes of
//! a gRPC length-prefixed frame (`grpc`), parsed and serialized by the generated Python classes.
//! `grpc.health.v1.Health` (`Check` and `Watch`) is answered here, from the serving status Python
//! sets, so probes never wait on the Python loop (`health`).
//!
//! h2 is used directly (not tonic): the transport needs only the gRPC framing, the status
//! trailers and stream resets, and h2 gives all three without a codec layer or protobuf codegen.

mod grpc;
mod handoff;
mod health;
mod serve;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use tokio::net::TcpSocket;
use tokio::sync::watch;

use handoff::{Event, Out, Shared};

/// Event kinds, as `drain()` reports them.
const OPENED: u8 = 0;
const MESSAGE: u8 = 1;
const HALF_CLOSED: u8 = 2;
const RESET: u8 = 3;

fn resolve(host: &str, port: u16) -> PyResult<SocketAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port)
        .to_socket_addrs()
        .map_err(|error| PyOSError::new_err(format!("cannot resolve {host}: {error}")))?
        .next()
        .ok_or_else(|| PyOSError::new_err(format!("cannot resolve {host}")))
}

/// Events as Python sees them (see `drain`).
fn events_list(py: Python<'_>, events: Vec<Event>) -> PyResult<Bound<'_, PyList>> {
    let list = PyList::empty(py);
    for event in events {
        let item = match event {
            Event::Opened(id, peer) => (OPENED, id, PyString::new(py, &peer).into_any()).into_pyobject(py)?,
            Event::Message(id, data) => {
                (MESSAGE, id, PyBytes::new(py, &data).into_any()).into_pyobject(py)?
            }
            Event::HalfClosed(id) => (HALF_CLOSED, id, py.None().into_bound(py)).into_pyobject(py)?,
            Event::Reset(id) => (RESET, id, py.None().into_bound(py)).into_pyobject(py)?,
        };
        list.append::<Bound<'_, PyTuple>>(item)?;
    }
    Ok(list)
}

/// The native ext_proc gRPC server (see the module documentation).
#[pyclass(name = "ExtProcServer", module = "vsr._core")]
pub struct PyExtProcServer {
    shared: Arc<Shared>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    stopping: watch::Sender<bool>,
    port: u16,
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
        let shared = Arc::new(Shared::new(eventfd, max_message_bytes));
        let (stopping, stop_watch) = watch::channel(false);
        runtime.spawn(serve::accept_loop(shared.clone(), listener, stop_watch));
        runtime.spawn(handoff::dispatch(shared.clone()));
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
        events_list(py, self.shared.take_events())
    }

    /// Queue one response message on a stream (dropped if the stream is gone).
    fn send(&self, stream: u64, message: &[u8]) {
        self.shared.queue([(stream, Out::Message(Bytes::copy_from_slice(message)))]);
    }

    /// End a stream with a gRPC status (nothing if the stream is gone).
    #[pyo3(signature = (stream, code = 0, message = ""))]
    fn close(&self, stream: u64, code: u32, message: &str) {
        self.shared.queue([(stream, Out::Close(code, message.to_owned()))]);
    }

    /// Queue several items at once, in order: `(stream, message, 0, "")` sends `message`,
    /// `(stream, None, code, text)` ends the stream. One lock and at most one wake of the
    /// runtime for the lot: sent one by one, the runtime's thread can wake and take the first
    /// before the second is queued, and each wake is a syscall that often switches threads.
    fn send_batch(&self, items: Vec<(u64, Option<Vec<u8>>, u32, String)>) {
        self.shared.queue(items.into_iter().map(|(stream, message, code, text)| match message {
            Some(message) => (stream, Out::Message(Bytes::from(message))),
            None => (stream, Out::Close(code, text)),
        }));
    }

    /// The health status of "" and the ext_proc service: what `Check` answers, and what `Watch`
    /// streams send when it changes.
    fn set_serving(&self, serving: bool) {
        self.shared.serving.send_if_modified(|current| std::mem::replace(current, serving) != serving);
    }

    /// `grpc.health.v1.Health/Watch` streams open.
    fn health_watches(&self) -> usize {
        self.shared.health_watches.load(Ordering::Relaxed)
    }

    /// Streams open in the transport.
    fn open_streams(&self) -> usize {
        self.shared.streams.lock().unwrap().len()
    }

    /// How many of Python's batches woke the runtime's dispatcher.
    fn wakes(&self) -> u64 {
        self.shared.wakes()
    }

    /// Close the port and send GOAWAY on every connection; open ext_proc streams go on, health
    /// is NOT_SERVING and `Watch` streams end (after sending it).
    fn stop_accepting(&self) {
        self.set_serving(false);
        let _ = self.stopping.send(true);
    }

    /// Stop everything: open streams end with UNAVAILABLE, connections close.
    fn shutdown(&self, py: Python<'_>) {
        self.set_serving(false);
        let _ = self.stopping.send(true);
        self.shared.streams.lock().unwrap().clear();
        let runtime = self.runtime.lock().unwrap().take();
        if let Some(runtime) = runtime {
            let shared = self.shared.clone();
            py.detach(move || {
                // Every stream is ending now (ext_proc ones as their channel closed, `Watch` ones
                // on `stopping`) and h2 closes a connection that sent GOAWAY once its last stream
                // is written out: wait for that, bounded, so clients get the final messages and
                // statuses instead of a dropped socket.
                let deadline = Instant::now() + Duration::from_secs(1);
                while shared.connections.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
                runtime.shutdown_timeout(Duration::from_secs(1))
            });
        }
    }
}
