//! ModernBERT's attention and gated MLP on vsr's kernels instead of candle's generic ops.
//!
//! Attention: the head-split permute, cuBLAS's products (through candle), and the masked softmax
//! in place with the scale folded in and the sliding window applied in the kernel, then the
//! head-merge permute. The generic path scaled q in a separate kernel, broadcast-added a (batch,
//! heads, seq, seq) bias (padding plus a (seq, seq) window bias for the local layers) and ran
//! candle's softmax. Rotary embeddings still go between the split and the products (modernbert.rs).
//! The gated MLP act(x[..., :half]) * x[..., half:] is one pass writing a contiguous output.
//!
//! `VSR_MODERNBERT_GENERIC=1` selects the generic path on CUDA, for comparisons and as a fallback.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, CudaStorage};
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::attention::{HeadPermute, MaskedSoftmax, Permute, NO_WINDOW};
use super::{cuda_err, env_switch, grid, suffix, u32_of, vector_width, view, with_float_type, MODULE, PTX};
use crate::error::Result;

/// True when `VSR_MODERNBERT_GENERIC=1` asks for candle's generic ops on CUDA.
pub fn modernbert_generic_forced() -> Result<bool> {
    static FORCED: std::sync::OnceLock<std::result::Result<bool, String>> = std::sync::OnceLock::new();
    Ok(FORCED
        .get_or_init(|| env_switch("VSR_MODERNBERT_GENERIC"))
        .clone()
        .map_err(candle_core::Error::Msg)?)
}

/// Fused QKV (batch, seq, 3 * heads * dim) -> q, k, v, each (batch, heads, seq, dim) contiguous.
pub fn split_heads(qkv: &Tensor, heads: usize) -> Result<(Tensor, Tensor, Tensor)> {
    let split = qkv.contiguous()?.apply_op1_no_bwd(&HeadPermute { kind: Permute::Split, heads })?;
    Ok((split.get(0)?, split.get(1)?, split.get(2)?))
}

/// softmax(q kᵀ / sqrt(d) + padding, keys farther than `half_window` from the query blocked) v
/// for q, k, v (batch, heads, seq, dim) and the (batch, 1, 1, seq) padding bias; returns the
/// context (batch, seq, heads * dim). `half_window` None: global attention.
pub fn windowed_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    padding: &Tensor,
    half_window: Option<usize>,
) -> Result<Tensor> {
    let (_, heads, seq, dim) = q.dims4()?;
    // A window that reaches every key blocks nothing.
    let half_window = match half_window {
        Some(half) if half + 1 < seq => u32_of(half, "windowed attention")?,
        _ => NO_WINDOW,
    };
    let scores = q.matmul(&k.t()?)?;
    let softmax =
        MaskedSoftmax { scale: 1.0 / (dim as f32).sqrt(), rows_per_batch: heads * seq, half_window };
    scores.inplace_op2(&padding.flatten_from(1)?.contiguous()?, &softmax)?;
    let context = scores.matmul(&v.contiguous()?)?;
    Ok(context.apply_op1_no_bwd(&HeadPermute { kind: Permute::Merge, heads })?)
}

/// act(x[..., :half]) * x[..., half:] for x (..., 2 * half): the exact GELU, or its tanh form when
/// `tanh`; a new contiguous (..., half).
pub fn gated_gelu(x: &Tensor, tanh: bool) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1_no_bwd(&GatedGelu { tanh })?)
}

struct GatedGelu {
    tanh: bool,
}

impl GatedGelu {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        storage: &CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let what = "gated gelu";
        let dims = layout.dims();
        let width = *dims.last().unwrap_or(&0);
        if width == 0 || !width.is_multiple_of(2) {
            bail!("{what}: the last dimension of {dims:?} is not [input; gate]");
        }
        let half = width / 2;
        let rows = layout.shape().elem_count() / width;
        let dtype = storage.dtype();
        let vec = vector_width(dtype, half, &[layout]);
        let name = format!("geglu_{}_{}_v{vec}", if self.tanh { "tanh" } else { "erf" }, suffix(dtype)?);
        let device = storage.device.clone();
        let input = view::<T>(storage, layout, what)?;
        // SAFETY: the kernel writes every output element.
        let mut output = unsafe { device.alloc::<T>(rows * half)? };
        let chunks = rows * half / vec;
        u32_of(rows * width, what)?;
        let (rows_u, half_u) = (u32_of(rows, what)?, u32_of(half / vec, what)?);
        let func = device.get_or_load_custom_func(&name, MODULE, PTX)?;
        let mut builder = func.builder();
        builder.arg(&input).arg(&mut output).arg(&rows_u).arg(&half_u);
        // SAFETY: `half` counts whole vectors (vector_width checked the row and the start); the
        // arguments match the kernel's signature.
        unsafe { builder.launch(grid(chunks)?) }.map_err(|e| cuda_err(&name, e))?;
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = half;
        }
        Ok((CudaStorage::wrap_cuda_slice(output, device), Shape::from(shape)))
    }
}

impl CustomOp1 for GatedGelu {
    fn name(&self) -> &'static str {
        "gated-gelu"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        bail!("gated-gelu runs on CUDA only")
    }

    fn cuda_fwd(&self, storage: &CudaStorage, layout: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        with_float_type!(storage.dtype(), T, self.run::<T>(storage, layout))
    }
}
