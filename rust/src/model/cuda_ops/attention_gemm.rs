//! Self-attention for batches without the head permutes: cuBLAS's batched products read each
//! (text, head)'s q, k and v straight from the fused QKV rows (batch, seq, 3 * hidden) and write
//! its context straight into the merged (batch, seq, hidden) layout; the masked softmax runs in
//! place on the scores between them.
//!
//! One (text, head)'s operands sit at an offset that depends on the text and the head separately,
//! so no single batch stride reaches them all and a strided-batched product cannot take them;
//! `cublasGemmBatchedEx` takes an array of pointers per operand instead. The `attention_pointers`
//! kernel fills those arrays on the stream from the current buffers, so a recorded CUDA graph
//! (cuda_graphs.rs) replays the fill with its own buffers, and no host copy is captured.
//!
//! `VSR_ATTENTION_PERMUTE=1` selects the previous path (head-split permute, candle's strided
//! products, head-merge permute) for comparisons.

use std::ffi::c_void;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cublas::sys as blas;
use candle_core::cuda_backend::cudarc::driver::{DevicePtr, DeviceRepr, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, CudaStorage};
use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};

use super::attention::{MaskedSoftmax, NO_WINDOW};
use super::{cuda_err, env_switch, grid, u32_of, view, with_float_type, ATTENTION_MODULE, ATTENTION_PTX};

/// The pointer arrays, `batch * heads` entries each, in the kernel's order.
const K: usize = 0;
const Q: usize = 1;
const SCORES: usize = 2;
const V: usize = 3;
const CONTEXT: usize = 4;
const ARRAYS: usize = 5;
/// Every operand pointer and row stride must be a multiple of this many bytes: cuBLAS cannot
/// see the pointers inside the arrays, and its tensor-core kernels load 16-byte units.
const ALIGN: usize = 16;

/// True when `VSR_ATTENTION_PERMUTE=1` asks for the permute path.
pub(super) fn permute_forced() -> candle_core::Result<bool> {
    static FORCED: std::sync::OnceLock<std::result::Result<bool, String>> = std::sync::OnceLock::new();
    FORCED.get_or_init(|| env_switch("VSR_ATTENTION_PERMUTE")).clone().map_err(candle_core::Error::Msg)
}

/// True when the batched products can take contiguous fused QKV `qkv` (batch, seq, 3 * heads *
/// dim): every (text, head) operand and row of q, k, v, the scores and the context 16-byte
/// aligned (a sequence of a multiple of 8 tokens in half precision, of 4 in float32).
pub(super) fn fits(qkv: &Tensor, heads: usize, dim: usize) -> candle_core::Result<bool> {
    let (batch, seq, width) = qkv.dims3()?;
    let element = qkv.dtype().size_in_bytes();
    let aligned = |elements: usize| (elements * element).is_multiple_of(ALIGN);
    Ok(batch * seq > 0
        && width == 3 * heads * dim
        && aligned(qkv.layout().start_offset())
        && aligned(dim)
        && aligned(seq)
        && i32::try_from(batch * heads).is_ok()
        && i32::try_from(width.max(seq)).is_ok())
}

/// softmax(q kᵀ · scale + bias) v per (text, head); (batch, seq, 3 * heads * dim) and a (batch,
/// seq) bias -> (batch, seq, heads * dim).
pub(super) struct BatchedAttention {
    pub heads: usize,
    pub dim: usize,
}

/// cuBLAS's element type and compute type for `dtype`, as candle picks them for its own products
/// (so this path rounds as the permute path's products do), with float32 scalars.
fn gemm_types(dtype: DType) -> candle_core::Result<(blas::cudaDataType_t, blas::cublasComputeType_t)> {
    use blas::cublasComputeType_t as C;
    use blas::cudaDataType_t as D;
    use candle_core::cuda_backend as cb;
    Ok(match dtype {
        DType::F32 if cb::gemm_reduced_precision_f32() => (D::CUDA_R_32F, C::CUBLAS_COMPUTE_32F_FAST_TF32),
        DType::F32 => (D::CUDA_R_32F, C::CUBLAS_COMPUTE_32F),
        DType::F16 if cb::gemm_reduced_precision_f16() => (D::CUDA_R_16F, C::CUBLAS_COMPUTE_32F_FAST_16F),
        DType::F16 => (D::CUDA_R_16F, C::CUBLAS_COMPUTE_32F),
        DType::BF16 if cb::gemm_reduced_precision_bf16() => (D::CUDA_R_16BF, C::CUBLAS_COMPUTE_32F_FAST_16BF),
        DType::BF16 => (D::CUDA_R_16BF, C::CUBLAS_COMPUTE_32F),
        other => bail!("batched attention: unsupported dtype {other:?}"),
    })
}

fn int(n: usize) -> candle_core::Result<i32> {
    i32::try_from(n).map_err(|_| cuda_err("batched attention", format!("{n} does not fit cuBLAS's int")))
}

impl BatchedAttention {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        qkv: (&CudaStorage, &Layout),
        bias: (&CudaStorage, &Layout),
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let what = "batched attention";
        let (batch, seq, width) = qkv.1.shape().dims3()?;
        let (heads, dim) = (self.heads, self.dim);
        let hidden = heads * dim;
        let element = std::mem::size_of::<T>();
        let aligned = |elements: usize| (elements * element).is_multiple_of(ALIGN);
        if batch * seq == 0
            || width != 3 * hidden
            || !aligned(qkv.1.start_offset())
            || !aligned(dim)
            || !aligned(seq)
        {
            bail!("{what}: unsupported shape {:?} for {heads} heads of {dim}", qkv.1.dims());
        }
        if bias.1.shape().elem_count() != batch * seq || bias.0.dtype() != qkv.0.dtype() {
            bail!("{what}: bias {:?} does not match {:?}", bias.1.dims(), qkv.1.dims());
        }
        let count = batch * heads;
        let (data, compute) = gemm_types(qkv.0.dtype())?;
        let device = qkv.0.device.clone();
        let stream = device.cuda_stream();
        let input = view::<T>(qkv.0, qkv.1, what)?;
        // SAFETY: the first product writes every score, the second every context element (each
        // (text, head) its seq x dim block), the pointer kernel every array entry.
        let scores = unsafe { device.alloc::<T>(count * seq * seq)? };
        let context = unsafe { device.alloc::<T>(batch * seq * hidden)? };
        let mut pointers = unsafe { device.alloc::<u64>(ARRAYS * count)? };

        let func = device.get_or_load_custom_func("attention_pointers", ATTENTION_MODULE, ATTENTION_PTX)?;
        let bytes = |elements: usize| (elements * element) as u64;
        let (row_bytes, hidden_bytes, head_bytes, score_bytes) =
            (bytes(width), bytes(hidden), bytes(dim), bytes(seq * seq));
        let (count_u, heads_u, seq_u) = (u32_of(count, what)?, u32_of(heads, what)?, u32_of(seq, what)?);
        {
            let mut builder = func.builder();
            builder.arg(&input).arg(&scores).arg(&context).arg(&mut pointers);
            builder.arg(&count_u).arg(&heads_u).arg(&seq_u);
            builder.arg(&row_bytes).arg(&hidden_bytes).arg(&head_bytes).arg(&score_bytes);
            // SAFETY: the arguments match the kernel's signature; it writes 5 * count pointers.
            unsafe { builder.launch(grid(count)?) }.map_err(|e| cuda_err("attention_pointers", e))?;
        }

        let blas_handle = device.cublas_handle();
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (seq_i, dim_i, width_i, hidden_i, count_i) =
            (int(seq)?, int(dim)?, int(width)?, int(hidden)?, int(count)?);
        let gemm = |transa, m, n, k, a: usize, lda, b: usize, ldb, c: usize, ldc| {
            let (base, _sync) = pointers.device_ptr(&stream);
            let array = |which: usize| (base + (which * count * 8) as u64) as *const *const c_void;
            // SAFETY: column-major views of the buffers above through the pointer arrays, with the
            // leading dimensions of their row-major layouts; the handle runs on candle's stream.
            unsafe {
                blas::cublasGemmBatchedEx(
                    *blas_handle.handle(),
                    transa,
                    blas::cublasOperation_t::CUBLAS_OP_N,
                    m,
                    n,
                    k,
                    (&alpha as *const f32).cast(),
                    array(a),
                    data,
                    lda,
                    array(b),
                    data,
                    ldb,
                    (&beta as *const f32).cast(),
                    array(c) as *const *mut c_void,
                    data,
                    ldc,
                    count_i,
                    compute,
                    blas::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT_TENSOR_OP,
                )
            }
            .result()
            .map_err(|e| cuda_err("batched attention product", e))
        };
        // Scores row-major (query, key) = column-major (key, query) = K (key x dim) · Qᵀ: the
        // rows of k and q are column-major (dim x seq) matrices with leading dimension 3 * hidden.
        gemm(
            blas::cublasOperation_t::CUBLAS_OP_T,
            seq_i,
            seq_i,
            dim_i,
            K,
            width_i,
            Q,
            width_i,
            SCORES,
            seq_i,
        )?;
        let mut scores = CudaStorage::wrap_cuda_slice(scores, device.clone());
        let softmax = MaskedSoftmax {
            scale: 1.0 / (dim as f32).sqrt(),
            rows_per_batch: heads * seq,
            half_window: NO_WINDOW,
        };
        let scores_layout = Layout::contiguous((batch, heads, seq, seq));
        softmax.run::<T>(&mut scores, &scores_layout, bias.0, bias.1)?;
        // Context row-major (query, dim) = column-major (dim, query) = Vᵀ (dim x key) · Pᵀ (key x
        // query), written at the head's columns of the merged rows (leading dimension hidden).
        let n = blas::cublasOperation_t::CUBLAS_OP_N;
        gemm(n, dim_i, seq_i, seq_i, V, width_i, SCORES, seq_i, CONTEXT, hidden_i)?;
        Ok((CudaStorage::wrap_cuda_slice(context, device), Shape::from((batch, seq, hidden))))
    }
}

impl CustomOp2 for BatchedAttention {
    fn name(&self) -> &'static str {
        "batched-attention"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        bail!("batched-attention runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        qkv: &CudaStorage,
        ql: &Layout,
        bias: &CudaStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        with_float_type!(qkv.dtype(), T, self.run::<T>((qkv, ql), (bias, bl)))
    }
}
