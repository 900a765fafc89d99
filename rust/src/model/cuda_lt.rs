//! cuBLASLt for the half-precision linear layers (`cuda_linear.rs`): one handle and workspace
//! per device, a plan per product shape (descriptors and algorithm), and the timing of candidate
//! algorithms for shapes recorded into CUDA graphs.
//!
//! Algorithms are chosen per power-of-two bucket of row counts, not per row count. The first
//! product that runs a given cuBLASLt kernel in a process costs ~4-5 ms on an H200 (cuBLASLt
//! loads it on first use, whatever `CUDA_MODULE_LOADING` says), and the heuristic picks a
//! different kernel for many row counts: a server meeting new (texts x tokens) shapes kept paying
//! it, 15-25 ms on a new shape's first request and 60-110 ms when a graph recording timed eight
//! candidates (benches/results/new_shapes_s30). One algorithm per bucket, all loaded at model
//! load (`Bundle::warm_up` runs every bucket), leaves no kernel to load while serving. An
//! algorithm the heuristic picked for a bucket's largest row count served every smaller count
//! tried (73-2,957 rows against 1,024); should cuBLASLt refuse one, that shape asks the
//! heuristic for its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::cuda_backend::cudarc::cublaslt::{result as lt, sys};
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use candle_core::cuda_backend::{CudaDevice, DeviceId};
use candle_core::DType;

use crate::error::{Error, Result};

/// cuBLASLt's recommended workspace on Hopper.
const WORKSPACE_BYTES: usize = 32 << 20;

/// One shape's product, planned once: descriptors and the algorithm cuBLASLt's heuristic picked.
/// Asking the heuristic on every call (as cudarc's `matmul` does) cost tens of microseconds of CPU
/// per layer, which at batch 1 is most of a forward pass.
struct Plan {
    desc: sys::cublasLtMatmulDesc_t,
    weight: sys::cublasLtMatrixLayout_t,
    input: sys::cublasLtMatrixLayout_t,
    output: sys::cublasLtMatrixLayout_t,
    algo: sys::cublasLtMatmulAlgo_t,
    /// The heuristic's candidates (one unless the plan was made for tuning, `with_tuning`).
    candidates: Vec<sys::cublasLtMatmulAlgo_t>,
    /// Whether the candidates were timed (`tune`).
    tuned: bool,
    /// Whether `algo` was asked of the heuristic for this very shape (not its bucket's).
    exact: bool,
}

/// Candidates asked of cuBLASLt's heuristic for a shape being tuned (an untuned plan asks for
/// one: more made the heuristic query itself slow, ~25 ms on the first request of a new shape).
const CANDIDATES: i32 = 8;
/// Products per candidate when timing them.
const TUNING_REPEATS: usize = 8;
/// Shapes tuned per device; later ones keep the heuristic's choice.
const MAX_TUNED: usize = 256;

thread_local! {
    /// Set while a CUDA graph's eager pass runs (`with_tuning`).
    static TUNING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with GEMM tuning on: products whose shape has no tuned plan yet time the heuristic's
/// candidates. cuda_graphs.rs calls this for the eager pass before a capture, so tuning is paid
/// once per recorded shape, which is then replayed many times; an eager request never waits for
/// it (each tuning synchronises the stream: ~30 ms on the first request of a new shape).
pub fn with_tuning<R>(f: impl FnOnce() -> R) -> R {
    let before = TUNING.with(|t| t.replace(true));
    let result = f();
    TUNING.with(|t| t.set(before));
    result
}

// SAFETY: the handles are plain descriptors; every use goes through the `Lt::plans` mutex.
unsafe impl Send for Plan {}

impl Drop for Plan {
    fn drop(&mut self) {
        // SAFETY: created in `Plan::new`, destroyed once here.
        unsafe {
            let _ = lt::destroy_matrix_layout(self.weight);
            let _ = lt::destroy_matrix_layout(self.input);
            let _ = lt::destroy_matrix_layout(self.output);
            let _ = lt::destroy_matmul_desc(self.desc);
        }
    }
}

/// (dtype, out, rows, in, GELU in the epilogue).
pub(super) type PlanKey = (DType, usize, usize, usize, bool);

/// Plans are per row count, and a server sees many; past this many the cache starts over (a
/// plan is a few descriptors; its bucket's algorithms stay).
const MAX_PLANS: usize = 4096;

/// The smallest bucket: fewer rows share its algorithm.
const MIN_BUCKET_ROWS: usize = 16;

/// Whether row counts share their bucket's algorithm (`VSR_GEMM_BUCKETS=0`: every row count
/// asks the heuristic for its own, and the load runs no product warm-up).
pub(crate) fn buckets_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("VSR_GEMM_BUCKETS").map(|v| v != "0").unwrap_or(true))
}

/// The bucket of row counts whose products share an algorithm: the next power of two.
pub(crate) fn row_bucket(rows: usize) -> usize {
    if !buckets_enabled() {
        return rows;
    }
    rows.next_power_of_two().max(MIN_BUCKET_ROWS)
}

/// Every bucket up to `max_rows` rows, smallest first (what `Bundle::warm_up` runs); none when
/// buckets are off.
pub(crate) fn row_buckets(max_rows: usize) -> Vec<usize> {
    if !buckets_enabled() {
        return Vec::new();
    }
    std::iter::successors(Some(MIN_BUCKET_ROWS), |&rows| Some(rows * 2))
        .take_while(|&rows| rows <= max_rows.next_power_of_two())
        .collect()
}

/// A bucket's algorithms from the heuristic at the bucket's row count: the best first, then the
/// candidates tuning times (`asked` of them were requested).
struct BucketAlgos {
    algos: Vec<sys::cublasLtMatmulAlgo_t>,
    asked: i32,
}

// SAFETY: plain algorithm descriptions (byte arrays), used under the plans mutex.
unsafe impl Send for BucketAlgos {}

#[derive(Default)]
struct Plans {
    by_shape: HashMap<PlanKey, Plan>,
    /// Keyed by the plan key with `rows` replaced by its bucket; never cleared (a few per layer
    /// shape and bucket).
    by_bucket: HashMap<PlanKey, BucketAlgos>,
}

/// A device's cuBLASLt handle, workspace and plans, shared by every layer.
pub(super) struct Lt {
    handle: sys::cublasLtHandle_t,
    workspace: CudaSlice<u8>,
    plans: Mutex<Plans>,
    tuned: std::sync::atomic::AtomicUsize,
}

// SAFETY: the handle is used under the plans mutex only; cuBLASLt handles may move between threads.
unsafe impl Send for Lt {}
unsafe impl Sync for Lt {}

fn lt_err(what: &str, e: impl std::fmt::Debug) -> candle_core::Error {
    candle_core::Error::Cuda(format!("cuBLASLt {what}: {e:?}").into())
}

impl Lt {
    fn new(stream: &Arc<CudaStream>) -> Result<Self> {
        let handle = lt::create_handle().map_err(|e| Error::Device(format!("cuBLASLt: {e:?}")))?;
        // SAFETY: scratch memory cuBLASLt writes before it reads.
        let workspace = unsafe { stream.alloc::<u8>(WORKSPACE_BYTES) }
            .map_err(|e| Error::Device(format!("cuBLASLt workspace: {e:?}")))?;
        Ok(Lt { handle, workspace, plans: Mutex::new(Plans::default()), tuned: Default::default() })
    }

    /// The plan for y (rows x out) = x (rows x in) · Wᵀ + b in `dtype`, with the given
    /// algorithms (the first runs; all are timed when tuning).
    fn plan(
        &self,
        key: PlanKey,
        algos: Vec<sys::cublasLtMatmulAlgo_t>,
        exact: bool,
    ) -> candle_core::Result<Plan> {
        let mut plan = self.descriptors(key)?;
        plan.algo = *algos.first().ok_or_else(|| lt_err("plan", "no algorithm"))?;
        plan.candidates = algos;
        plan.exact = exact;
        Ok(plan)
    }

    /// The heuristic's best `candidates` algorithms for the product `key` describes.
    fn heuristic(
        &self,
        key: PlanKey,
        candidates: i32,
    ) -> candle_core::Result<Vec<sys::cublasLtMatmulAlgo_t>> {
        let plan = self.descriptors(key)?;
        self.ask(&plan, candidates)
    }

    /// Descriptors for the product `key` describes (no algorithm yet).
    fn descriptors(&self, key: PlanKey) -> candle_core::Result<Plan> {
        let (dtype, out_dim, rows, in_dim, gelu) = key;
        let data = match dtype {
            DType::BF16 => sys::cudaDataType_t::CUDA_R_16BF,
            DType::F16 => sys::cudaDataType_t::CUDA_R_16F,
            other => candle_core::bail!("bias-linear: unsupported dtype {other:?}"),
        };
        let err = |e| lt_err("plan", e);
        let desc = lt::create_matmul_desc(
            sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            sys::cudaDataType_t::CUDA_R_32F,
        )
        .map_err(err)?;
        // Column-major view: (out x rows) = Wᵀᵀ (out x in) · xᵀ (in x rows); the bias runs along
        // `out`, which is what the BIAS epilogue adds to every column.
        let plan = Plan {
            desc,
            weight: lt::create_matrix_layout(data, in_dim as u64, out_dim as u64, in_dim as i64)
                .map_err(err)?,
            input: lt::create_matrix_layout(data, in_dim as u64, rows as u64, in_dim as i64).map_err(err)?,
            output: lt::create_matrix_layout(data, out_dim as u64, rows as u64, out_dim as i64)
                .map_err(err)?,
            algo: unsafe { std::mem::zeroed() },
            candidates: Vec::new(),
            tuned: false,
            exact: false,
        };
        let transpose: i32 = 1;
        let epilogue = if gelu {
            sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_GELU_BIAS
        } else {
            sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS
        };
        // SAFETY: a live descriptor; each attribute gets a value of the type cuBLASLt documents.
        unsafe {
            let set = |attr, value: *const std::ffi::c_void, size| {
                lt::set_matmul_desc_attribute(plan.desc, attr, value, size)
            };
            set(
                sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA,
                (&transpose as *const i32).cast(),
                4,
            )
            .map_err(err)?;
            set(
                sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_EPILOGUE,
                (&epilogue as *const sys::cublasLtEpilogue_t).cast(),
                std::mem::size_of_val(&epilogue),
            )
            .map_err(err)?;
        }
        Ok(plan)
    }

    /// The heuristic's best `candidates` algorithms for `plan`'s descriptors, within the workspace.
    fn ask(&self, plan: &Plan, candidates: i32) -> candle_core::Result<Vec<sys::cublasLtMatmulAlgo_t>> {
        let err = |e| lt_err("heuristic", e);
        let pref = lt::create_matmul_pref().map_err(err)?;
        let workspace = WORKSPACE_BYTES as u64;
        // SAFETY: live descriptors; the preference attribute is the u64 cuBLASLt documents.
        let found = unsafe {
            lt::set_matmul_pref_attribute(
                pref,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&workspace as *const u64).cast(),
                8,
            )
            .and_then(|_| {
                let mut results: Vec<sys::cublasLtMatmulHeuristicResult_t> =
                    vec![std::mem::zeroed(); candidates.max(1) as usize];
                let mut count = 0i32;
                sys::cublasLtMatmulAlgoGetHeuristic(
                    self.handle,
                    plan.desc,
                    plan.weight,
                    plan.input,
                    plan.output,
                    plan.output,
                    pref,
                    candidates.max(1),
                    results.as_mut_ptr(),
                    &mut count,
                )
                .result()?;
                results.truncate(count.max(0) as usize);
                results.retain(|r| {
                    r.state == sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS
                        && r.workspaceSize <= WORKSPACE_BYTES
                });
                if results.is_empty() {
                    return Err(candle_core::cuda_backend::cudarc::cublaslt::result::CublasError(
                        sys::cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED,
                    ));
                }
                Ok(results)
            })
        };
        // SAFETY: created above, destroyed once.
        let _ = unsafe { lt::destroy_matmul_pref(pref) };
        Ok(found.map_err(err)?.iter().map(|r| r.algo).collect())
    }

    /// `key`'s bucket's algorithms, at least `wanted` of them asked of the heuristic (at the
    /// bucket's row count) the first time they are needed.
    fn bucket_algos(
        &self,
        by_bucket: &mut HashMap<PlanKey, BucketAlgos>,
        key: PlanKey,
        wanted: i32,
    ) -> candle_core::Result<Vec<sys::cublasLtMatmulAlgo_t>> {
        let (dtype, out_dim, rows, in_dim, gelu) = key;
        let bucket = (dtype, out_dim, row_bucket(rows), in_dim, gelu);
        if by_bucket.get(&bucket).is_none_or(|known| known.asked < wanted) {
            let algos = self.heuristic(bucket, wanted)?;
            by_bucket.insert(bucket, BucketAlgos { algos, asked: wanted });
        }
        let known = by_bucket.get(&bucket).ok_or_else(|| lt_err("plans", "missing bucket"))?;
        Ok(known.algos.clone())
    }
}

/// The fastest of `candidates` for one shape, timed with CUDA events on the real operands (the
/// product's output is rewritten by the call that follows). cuBLASLt's heuristic ranks by a model
/// of the GPU, not by measurement. None: keep the heuristic's first, as when the stream is being
/// captured into a graph (nothing may synchronise then), when there is one candidate, or with
/// `VSR_GEMM_TUNING=0`.
fn tune(
    stream: &Arc<CudaStream>,
    candidates: &[sys::cublasLtMatmulAlgo_t],
    run: impl Fn(&sys::cublasLtMatmulAlgo_t) -> std::result::Result<(), lt::CublasError>,
) -> Option<sys::cublasLtMatmulAlgo_t> {
    use candle_core::cuda_backend::cudarc::driver::sys as driver;

    if candidates.len() < 2 || std::env::var("VSR_GEMM_TUNING").is_ok_and(|v| v == "0") {
        return None;
    }
    let idle = driver::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE;
    if stream.capture_status().ok()? != idle {
        return None;
    }
    let timing = Some(driver::CUevent_flags::CU_EVENT_DEFAULT);
    let mut best: Option<(f32, sys::cublasLtMatmulAlgo_t)> = None;
    for algo in candidates {
        // One untimed call (a kernel's first launch loads it), then the timed ones.
        if run(algo).is_err() {
            continue;
        }
        let start = stream.record_event(timing).ok()?;
        if (0..TUNING_REPEATS).any(|_| run(algo).is_err()) {
            continue;
        }
        let end = stream.record_event(timing).ok()?;
        let elapsed = start.elapsed_ms(&end).ok()?;
        if best.is_none_or(|(fastest, _)| elapsed < fastest) {
            best = Some((elapsed, *algo));
        }
    }
    best.map(|(_, algo)| algo)
}

type DeviceStates = Mutex<Vec<(DeviceId, Arc<Lt>)>>;

/// One cuBLASLt state per device, shared by every layer.
pub(super) fn state(device: &CudaDevice) -> Result<Arc<Lt>> {
    static STATES: OnceLock<DeviceStates> = OnceLock::new();
    let states = STATES.get_or_init(|| Mutex::new(Vec::new()));
    let mut states = states.lock().map_err(|_| Error::Inference("cuBLASLt state lock poisoned".into()))?;
    if let Some((_, state)) = states.iter().find(|(id, _)| *id == device.id()) {
        return Ok(state.clone());
    }
    let state = Arc::new(Lt::new(&device.cuda_stream())?);
    states.push((device.id(), state.clone()));
    Ok(state)
}

/// Device pointers of one product's operands: out = x · Wᵀ + bias, laid out as the plan's key
/// says (contiguous rows).
pub(super) struct Operands {
    pub x: u64,
    pub weight: u64,
    pub bias: u64,
    pub out: u64,
}

impl Lt {
    /// Queues the product `key` describes on `stream`: planned on first sight, its candidates
    /// timed first when tuning is on (`with_tuning`) and the shape is not tuned yet.
    pub(super) fn run(
        &self,
        key: PlanKey,
        operands: Operands,
        stream: &Arc<CudaStream>,
    ) -> candle_core::Result<()> {
        let mut guard = self.plans.lock().map_err(|_| lt_err("plans", "lock poisoned"))?;
        let Plans { by_shape, by_bucket } = &mut *guard;
        let tuning =
            TUNING.with(|t| t.get()) && self.tuned.load(std::sync::atomic::Ordering::Relaxed) < MAX_TUNED;
        let wanted = if tuning { CANDIDATES } else { 1 };
        match by_shape.get_mut(&key) {
            Some(plan) if tuning && !plan.tuned && plan.candidates.len() < 2 => {
                plan.candidates = if plan.exact {
                    self.heuristic(key, wanted)?
                } else {
                    self.bucket_algos(by_bucket, key, wanted)?
                };
            }
            Some(_) => {}
            None => {
                if by_shape.len() >= MAX_PLANS {
                    by_shape.clear();
                }
                let algos = self.bucket_algos(by_bucket, key, wanted)?;
                by_shape.insert(key, self.plan(key, algos, false)?);
            }
        }
        let plan = by_shape.get_mut(&key).ok_or_else(|| lt_err("plans", "missing plan"))?;
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (ws_ptr, _ws_sync) = self.workspace.device_ptr(stream);
        let Operands { x, weight, bias, out } = operands;
        // SAFETY: the plan's layouts describe these contiguous buffers (key = shape); the bias
        // pointer is set under the plans lock, right before the products that read it.
        let run = |plan: &Plan, algo: &sys::cublasLtMatmulAlgo_t| unsafe {
            lt::matmul(
                self.handle,
                plan.desc,
                (&alpha as *const f32).cast(),
                (&beta as *const f32).cast(),
                weight as *const _,
                plan.weight,
                x as *const _,
                plan.input,
                out as *const _,
                plan.output,
                out as *mut _,
                plan.output,
                algo,
                ws_ptr as *mut _,
                WORKSPACE_BYTES,
                stream.cu_stream() as *mut _,
            )
        };
        // SAFETY: `plan.desc` is a live descriptor; the attribute is an 8-byte device pointer.
        unsafe {
            lt::set_matmul_desc_attribute(
                plan.desc,
                sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                (&bias as *const u64).cast(),
                8,
            )
            .map_err(|e| lt_err("bias", e))?;
        }
        if tuning && !plan.tuned {
            plan.tuned = true;
            self.tuned.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let candidates = std::mem::take(&mut plan.candidates);
            if let Some(best) = tune(stream, &candidates, |algo| run(plan, algo)) {
                plan.algo = best;
            }
        }
        match run(plan, &plan.algo) {
            Ok(()) => Ok(()),
            Err(_) if !plan.exact => {
                // The bucket's algorithm does not serve this row count: ask for the shape's own.
                plan.algo = self.heuristic(key, 1)?[0];
                plan.exact = true;
                run(plan, &plan.algo).map_err(|e| lt_err("matmul", e))
            }
            Err(e) => Err(lt_err("matmul", e)),
        }
    }
}
