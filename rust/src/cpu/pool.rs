//! The CPU encoder path's threads: the caller's own thread plus `threads() - 1` helpers, and the
//! one way work is split across them.
//!
//! The calling thread does the serial work of a pass and its share of every split product; the
//! helpers only join products. A helper spins for a short while after each product (the next one
//! follows within tens of microseconds in a pass) and then sleeps. Before, the layers ran on a
//! rayon pool: the caller handed each pass to it and slept, and idle workers gave their core away
//! with `sched_yield` between products, ~50 context switches per short request on two busy
//! cores (benches/README.md).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A raw pointer that may cross to a helper thread; every use states why its range is disjoint.
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

/// How long a helper waits for the next product, spinning, before it sleeps.
const SPIN: Duration = Duration::from_micros(200);

/// A split product's shared part, as the helpers see it: its lifetime is erased, and the caller
/// does not return before every helper that took it is done with it.
#[derive(Clone, Copy)]
struct Task(*const (dyn Fn() + Sync));
// SAFETY: the closure is `Sync`; `Crew::run` keeps it alive while any helper holds it.
unsafe impl Send for Task {}

struct State {
    /// The open task; None while none is, or once its caller has closed it.
    task: Option<Task>,
    /// Tasks opened so far (a helper runs each at most once).
    generation: u64,
    /// Helpers asleep on `wake`.
    sleeping: usize,
}

struct Crew {
    state: Mutex<State>,
    wake: Condvar,
    /// `generation`, readable without the lock by spinning helpers.
    announced: AtomicU64,
    /// Helpers inside the open or last task.
    active: AtomicUsize,
    /// Set when a helper's part panicked; the caller panics in turn.
    panicked: AtomicBool,
    helpers: usize,
}

fn crew() -> &'static Crew {
    static CREW: OnceLock<&'static Crew> = OnceLock::new();
    CREW.get_or_init(|| {
        let crew: &'static Crew = Box::leak(Box::new(Crew {
            state: Mutex::new(State { task: None, generation: 0, sleeping: 0 }),
            wake: Condvar::new(),
            announced: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            helpers: threads() - 1,
        }));
        for i in 0..crew.helpers {
            // A helper that could not start never takes a task; the callers' parts cover its share.
            let _ =
                std::thread::Builder::new().name(format!("vsr-cpu-{}", i + 1)).spawn(move || crew.serve());
        }
        crew
    })
}

impl Crew {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A helper's life: wait for a task (spinning, then asleep), run its part, repeat.
    fn serve(&self) {
        let mut seen = 0u64;
        loop {
            self.wait_for_news(seen);
            let task = {
                let state = self.lock();
                if state.generation == seen {
                    None // woken ahead of a pass (`rouse`), or spuriously
                } else {
                    seen = state.generation;
                    if state.task.is_some() {
                        self.active.fetch_add(1, Ordering::AcqRel);
                    }
                    state.task
                }
            };
            if let Some(Task(task)) = task {
                // SAFETY: the task's caller waits for `active` to fall back before it returns.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { (*task)() }));
                if outcome.is_err() {
                    self.panicked.store(true, Ordering::Release);
                }
                self.active.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    /// Return once a task newer than `seen` is announced, or after `SPIN` and one sleep.
    fn wait_for_news(&self, seen: u64) {
        let deadline = Instant::now() + SPIN;
        let mut spins = 0u32;
        while self.announced.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            spins += 1;
            if spins.is_multiple_of(256) && Instant::now() >= deadline {
                let mut state = self.lock();
                if state.generation == seen {
                    state.sleeping += 1;
                    state = self.wake.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
                    state.sleeping -= 1;
                }
                return;
            }
        }
    }

    /// Run `part` on this thread and on every free helper, returning when all are done with it.
    /// If another caller's task holds the helpers, this thread runs `part` alone.
    fn run(&self, part: &(dyn Fn() + Sync)) {
        {
            let mut state = self.lock();
            if self.helpers == 0 || state.task.is_some() {
                drop(state);
                part();
                return;
            }
            // SAFETY (lifetime erased): closed and waited for below, before `part` goes.
            let erased: &'static (dyn Fn() + Sync) = unsafe { std::mem::transmute(part) };
            state.task = Some(Task(erased));
            state.generation += 1;
            self.announced.store(state.generation, Ordering::Release);
            if state.sleeping > 0 {
                self.wake.notify_all();
            }
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(part));
        // Close the task (no helper takes it from now on), then wait for those that did.
        self.lock().task = None;
        let mut spins = 0u32;
        while self.active.load(Ordering::Acquire) > 0 {
            spins += 1;
            if spins < 4096 {
                std::hint::spin_loop();
            } else {
                // A helper preempted in its part: let it run.
                std::thread::yield_now();
            }
        }
        if let Err(payload) = outcome {
            std::panic::resume_unwind(payload);
        }
        if self.panicked.swap(false, Ordering::AcqRel) {
            panic!("a CPU helper thread panicked in its part of a product");
        }
    }

    /// Wake sleeping helpers ahead of a pass, so the first product finds them spinning.
    fn rouse(&self) {
        let state = self.lock();
        if state.sleeping > 0 && state.task.is_none() {
            // A wake without a task: the helpers spin again, for the pass's first product.
            self.wake.notify_all();
        }
    }
}

/// Run a pass of the CPU path (`work`) on this thread, the helpers woken for its products.
pub(crate) fn install<R>(work: impl FnOnce() -> R) -> R {
    if threads() > 1 {
        crew().rouse();
    }
    work()
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
    crew().run(&run);
}
