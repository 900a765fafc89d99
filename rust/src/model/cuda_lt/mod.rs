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
//! heuristic for its own. How algorithms are chosen (buckets, heuristic queries, tuning) lives
//! in `algos.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::cuda_backend::cudarc::cublaslt::{result as lt, sys};
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use candle_core::cuda_backend::{CudaDevice, DeviceId};
use candle_core::DType;

use crate::error::{Error, Result};

mod algos;

pub(crate) use algos::row_buckets;
use algos::{tune, BucketAlgos, CANDIDATES};

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
    fn plan(&self, key: PlanKey, algos: Vec<sys::cublasLtMatmulAlgo_t>) -> candle_core::Result<Plan> {
        let mut plan = self.descriptors(key)?;
        plan.algo = *algos.first().ok_or_else(|| lt_err("plan", "no algorithm"))?;
        plan.candidates = algos;
        Ok(plan)
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
                by_shape.insert(key, self.plan(key, algos)?);
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
