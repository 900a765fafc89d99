//! Linear layers on CUDA in half precision: the bias is added by cuBLASLt's epilogue inside the
//! matrix product.
//!
//! candle adds a bias with a separate broadcast kernel whose per-element index arithmetic made it
//! the most expensive kernel of a BERT forward on an H100 (16 of 25.6 ms at 64 x 128 tokens, see
//! benches/results/profile_gpu_h100.log). The epilogue writes each output once, with the bias
//! already in. Float32 keeps candle's path: cuBLASLt's f32 product runs in TF32, which would break
//! float32 parity.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cublaslt::{result as lt, sys};
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr};
use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorage, DeviceId};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};

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

type PlanKey = (DType, usize, usize, usize);

/// Plans are per row count, and a server sees many; past this many the cache starts over (a
/// plan costs one heuristic query to rebuild).
const MAX_PLANS: usize = 4096;

/// A device's cuBLASLt handle, workspace and plans, shared by every layer.
struct Lt {
    handle: sys::cublasLtHandle_t,
    workspace: CudaSlice<u8>,
    plans: Mutex<HashMap<PlanKey, Plan>>,
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
        Ok(Lt { handle, workspace, plans: Mutex::new(HashMap::new()) })
    }

    /// The plan for y (rows x out) = x (rows x in) · Wᵀ + b in `dtype`.
    fn plan(&self, key: PlanKey) -> candle_core::Result<Plan> {
        let (dtype, out_dim, rows, in_dim) = key;
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
        let mut plan = Plan {
            desc,
            weight: lt::create_matrix_layout(data, in_dim as u64, out_dim as u64, in_dim as i64)
                .map_err(err)?,
            input: lt::create_matrix_layout(data, in_dim as u64, rows as u64, in_dim as i64).map_err(err)?,
            output: lt::create_matrix_layout(data, out_dim as u64, rows as u64, out_dim as i64)
                .map_err(err)?,
            algo: unsafe { std::mem::zeroed() },
        };
        let transpose: i32 = 1;
        let epilogue = sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS;
        let pref = lt::create_matmul_pref().map_err(err)?;
        let workspace = WORKSPACE_BYTES as u64;
        // SAFETY: live descriptors; each attribute gets a value of the type cuBLASLt documents.
        let heuristic = unsafe {
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
            let found = lt::set_matmul_pref_attribute(
                pref,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&workspace as *const u64).cast(),
                8,
            )
            .and_then(|_| {
                lt::get_matmul_algo_heuristic(
                    self.handle,
                    plan.desc,
                    plan.weight,
                    plan.input,
                    plan.output,
                    plan.output,
                    pref,
                )
            });
            let _ = lt::destroy_matmul_pref(pref);
            found.map_err(err)?
        };
        // Set on the plan itself: a `Plan { algo, ..plan }` copy would leave `plan` to be dropped
        // here, destroying the descriptors the copy points at.
        plan.algo = heuristic.algo;
        Ok(plan)
    }
}

type DeviceStates = Mutex<Vec<(DeviceId, Arc<Lt>)>>;

/// One cuBLASLt state per device, shared by every layer.
fn state(device: &CudaDevice) -> Result<Arc<Lt>> {
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

/// y = x · Wᵀ + b with the bias in the product's epilogue.
pub struct BiasLinear {
    lt: Arc<Lt>,
}

impl BiasLinear {
    /// Some(op) when `weight` lives on a CUDA device in float16/bfloat16; None otherwise.
    pub fn for_weight(weight: &Tensor) -> Result<Option<Self>> {
        match (weight.device(), weight.dtype()) {
            (candle_core::Device::Cuda(device), DType::BF16 | DType::F16) => {
                Ok(Some(BiasLinear { lt: state(device)? }))
            }
            _ => Ok(None),
        }
    }

    pub fn forward(&self, x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let x = x.contiguous()?;
        Ok(x.apply_op3_no_bwd(weight, bias, self)?)
    }

    fn product<T: CudaDType + DeviceRepr>(
        &self,
        x: (&CudaStorage, &Layout),
        weight: (&CudaStorage, &Layout),
        bias: (&CudaStorage, &Layout),
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let (x_storage, x_layout) = x;
        let (w_storage, w_layout) = weight;
        let (b_storage, b_layout) = bias;
        let (out_dim, in_dim) = w_layout.shape().dims2()?;
        let rows = x_layout.shape().elem_count() / in_dim;
        if !x_layout.is_contiguous() || !w_layout.is_contiguous() || !b_layout.is_contiguous() {
            candle_core::bail!("bias-linear needs contiguous inputs");
        }
        let device = x_storage.device.clone();
        let stream = device.cuda_stream();
        let x_slice = x_storage.as_cuda_slice::<T>()?.slice(x_layout.start_offset()..);
        let w_slice = w_storage.as_cuda_slice::<T>()?.slice(w_layout.start_offset()..);
        let b_slice = b_storage.as_cuda_slice::<T>()?.slice(b_layout.start_offset()..);
        // SAFETY: every element is written by the product below before anyone reads it.
        let mut out = unsafe { device.alloc::<T>(rows * out_dim)? };
        let mut plans = self.lt.plans.lock().map_err(|_| lt_err("plans", "lock poisoned"))?;
        let key = (x_storage.dtype(), out_dim, rows, in_dim);
        if !plans.contains_key(&key) {
            if plans.len() >= MAX_PLANS {
                plans.clear();
            }
            let plan = self.lt.plan(key)?;
            plans.insert(key, plan);
        }
        let plan = &plans[&key];
        let (alpha, beta) = (1.0f32, 0.0f32);
        {
            let (x_ptr, _x_sync) = x_slice.device_ptr(&stream);
            let (w_ptr, _w_sync) = w_slice.device_ptr(&stream);
            let (b_ptr, _b_sync) = b_slice.device_ptr(&stream);
            let (o_ptr, _o_sync) = out.device_ptr_mut(&stream);
            let (ws_ptr, _ws_sync) = self.lt.workspace.device_ptr(&stream);
            // SAFETY: the plan's layouts describe these contiguous buffers (key = shape); the bias
            // pointer is set under the plans lock, right before the product that reads it.
            unsafe {
                lt::set_matmul_desc_attribute(
                    plan.desc,
                    sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                    (&b_ptr as *const u64).cast(),
                    8,
                )
                .map_err(|e| lt_err("bias", e))?;
                lt::matmul(
                    self.lt.handle,
                    plan.desc,
                    (&alpha as *const f32).cast(),
                    (&beta as *const f32).cast(),
                    w_ptr as *const _,
                    plan.weight,
                    x_ptr as *const _,
                    plan.input,
                    o_ptr as *const _,
                    plan.output,
                    o_ptr as *mut _,
                    plan.output,
                    &plan.algo,
                    ws_ptr as *mut _,
                    WORKSPACE_BYTES,
                    stream.cu_stream() as *mut _,
                )
                .map_err(|e| lt_err("matmul", e))?;
            }
        }
        drop(plans);
        let mut shape = x_layout.shape().dims().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = out_dim;
        }
        Ok((CudaStorage::wrap_cuda_slice(out, device), Shape::from(shape)))
    }
}

impl CustomOp3 for BiasLinear {
    fn name(&self) -> &'static str {
        "bias-linear"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("bias-linear runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        x: &CudaStorage,
        x_layout: &Layout,
        weight: &CudaStorage,
        w_layout: &Layout,
        bias: &CudaStorage,
        b_layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let args = ((x, x_layout), (weight, w_layout), (bias, b_layout));
        match x.dtype() {
            DType::BF16 => self.product::<half::bf16>(args.0, args.1, args.2),
            DType::F16 => self.product::<half::f16>(args.0, args.1, args.2),
            other => candle_core::bail!("bias-linear: unsupported dtype {other:?}"),
        }
    }
}
