//! One thread pool for the CPU encoder path, sized to the cores, and the one way work is split
//! across it. candle ran its gemm on rayon's global pool and its element-wise work on a second,
//! spinning pool: on two cores the two fought over every small product (benches/README.md).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// A raw pointer that may cross to a pool thread; every use states why its range is disjoint.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub *mut T);
// SAFETY: the pointer is only dereferenced by callers that give each thread a disjoint range.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `Send` wrapper, not its field).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads())
            .thread_name(|i| format!("vsr-cpu-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// Threads the CPU path may use: `VSR_CPU_THREADS`, else the cores this process may run on.
pub(crate) fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::env::var("VSR_CPU_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    })
}

/// Run `work` on the pool, so that splits inside it are joined by pool threads (one hop to
/// wake a sibling instead of two from a foreign thread).
pub(crate) fn install<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(pool) if threads() > 1 => pool.install(work),
        _ => work(),
    }
}

/// Chunks per thread in `for_each_part`.
const CHUNKS_PER_THREAD: usize = 4;

/// Run `work` over `0..items` on up to `parts` threads, in contiguous chunks that each thread
/// claims from a shared counter until none are left. On a shared machine the OS often preempts
/// one of the two threads for a while: with a fixed half each, the product waited for it; with
/// chunks, the running thread takes over what the preempted one has not started.
pub(crate) fn for_each_part(parts: usize, items: usize, work: impl Fn(std::ops::Range<usize>) + Sync) {
    let parts = parts.min(items).max(1);
    if parts == 1 {
        work(0..items);
        return;
    }
    let chunks = (parts * CHUNKS_PER_THREAD).min(items);
    let next = AtomicUsize::new(0);
    let run = || loop {
        let chunk = next.fetch_add(1, Ordering::Relaxed);
        if chunk >= chunks {
            break;
        }
        work((chunk * items / chunks)..((chunk + 1) * items / chunks));
    };
    rayon::scope(|scope| {
        for _ in 1..parts {
            let run = &run;
            scope.spawn(move |_| run());
        }
        run();
    });
}
