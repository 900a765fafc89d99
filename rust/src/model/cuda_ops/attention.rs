//! Self-attention on fused QKV. Short sequences of few texts take one fused kernel (QKV split,
//! both products, softmax and head merge in one launch); batches cuBLAS's batched products straight
//! on the fused rows around one masked softmax in place (attention_gemm.rs); what those cannot
//! take (unaligned shapes, or `VSR_ATTENTION_PERMUTE=1`) a head-split permute, candle's products,
//! the softmax, and a head-merge permute.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, CudaStorage};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, InplaceOp2, Layout, Shape, Tensor};

use super::{attention_gemm, SOFTMAX_VALUES_PER_LANE};
use super::{
    cuda_err, grid, suffix, u32_of, vector_width, view, view_mut, with_float_type, ATTENTION_MODULE,
    ATTENTION_PTX,
};
use crate::error::Result;

/// softmax(q kᵀ / sqrt(d) + bias) v from fused QKV (batch, seq, 3 * hidden), with `bias` the
/// (batch, seq) additive padding bias; returns (batch, seq, hidden).
pub fn self_attention(qkv: &Tensor, bias: &Tensor, heads: usize) -> Result<Tensor> {
    let (batch, seq, three_hidden) = qkv.dims3()?;
    let dim = three_hidden / 3 / heads;
    if fused_fits(batch, seq, dim)? && three_hidden == 3 * heads * dim {
        let qkv = qkv.contiguous()?;
        // The kernel reads q, k and v in 16-byte units.
        if (qkv.layout().start_offset() * qkv.dtype().size_in_bytes()).is_multiple_of(16) {
            let fused = FusedAttention { heads, dim, scale: 1.0 / (dim as f32).sqrt() };
            return Ok(qkv.apply_op2_no_bwd(&bias.contiguous()?, &fused)?);
        }
    }
    let qkv = qkv.contiguous()?;
    if !attention_gemm::permute_forced()? && attention_gemm::fits(&qkv, heads, dim)? {
        let batched = attention_gemm::BatchedAttention { heads, dim };
        return Ok(qkv.apply_op2_no_bwd(&bias.contiguous()?, &batched)?);
    }
    let split = qkv.apply_op1_no_bwd(&HeadPermute { kind: Permute::Split, heads })?;
    let (q, k, v) = (split.get(0)?, split.get(1)?, split.get(2)?);
    let scores = q.matmul(&k.t()?)?;
    let softmax = MaskedSoftmax {
        scale: 1.0 / (dim as f32).sqrt(),
        rows_per_batch: heads * seq,
        half_window: NO_WINDOW,
    };
    scores.inplace_op2(&bias.contiguous()?, &softmax)?;
    let context = scores.matmul(&v)?;
    Ok(context.apply_op1_no_bwd(&HeadPermute { kind: Permute::Merge, heads })?)
}

/// Keys the fused kernel holds in shared memory (`ATT_MAX_KEYS` in attention_ops.cu).
const FUSED_MAX_KEYS: usize = 128;
/// Queries per block of the fused kernel (`ATT_TILE`), and its threads (`ATT_THREADS`): 8 warps
/// of 2 queries. With 4 warps (8 queries a block) the kernel took 7.2 against 6.3 us per layer
/// at 1 text of 128 tokens on an H200 (BERT-base, bf16), and the call 0.477-0.489 against
/// 0.469-0.491 ms end to end (benches/results/attention_s28): K and V are loaded and converted
/// once per 16 queries instead of 8.
const FUSED_TILE: usize = 16;
const FUSED_THREADS: u32 = 256;

/// The most texts per call that take the fused kernel. It does its products on CUDA cores, one
/// block per 16 queries of a head, so its time grows with the batch while cuBLAS's tensor-core
/// products stay nearly flat: on an H200 (BERT-base, 128 tokens, bf16) it took 7.6 us per layer
/// at 1 text against 10.0 us for the five unfused kernels, and 31.4 against 14.8 us at 8 texts.
/// On for single texts, where it wins: this version (16-byte loads) passed
/// tests/core/test_cuda_attention.py on an H200 with it set to 8, and BERT-base batch 1 at 128
/// tokens took 0.499 / 0.556 / 0.500 ms end to end with it against 0.554 / 0.522 / 0.556 without
/// (benches/results/fused_attention_verify). `VSR_FUSED_ATTENTION_MAX_BATCH=0` turns it off.
const FUSED_DEFAULT_MAX_BATCH: usize = 1;

fn fused_max_batch() -> candle_core::Result<usize> {
    static MAX: std::sync::OnceLock<std::result::Result<usize, String>> = std::sync::OnceLock::new();
    let max = MAX.get_or_init(|| match std::env::var("VSR_FUSED_ATTENTION_MAX_BATCH") {
        Err(_) => Ok(FUSED_DEFAULT_MAX_BATCH),
        Ok(value) => value.trim().parse().map_err(|_| {
            format!("VSR_FUSED_ATTENTION_MAX_BATCH must be a whole number of texts (0: off), got {value:?}")
        }),
    });
    max.clone().map_err(candle_core::Error::Msg)
}

fn fused_fits(batch: usize, seq: usize, dim: usize) -> candle_core::Result<bool> {
    Ok(batch <= fused_max_batch()? && (1..=FUSED_MAX_KEYS).contains(&seq) && matches!(dim, 32 | 64))
}

/// softmax(q kᵀ · scale + bias) v per head in one launch; (batch, seq, 3 * heads * dim) and a
/// (batch, seq) bias -> (batch, seq, heads * dim).
struct FusedAttention {
    heads: usize,
    dim: usize,
    scale: f32,
}

impl FusedAttention {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        qkv: (&CudaStorage, &Layout),
        bias: (&CudaStorage, &Layout),
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let what = "fused attention";
        let (batch, seq, width) = qkv.1.shape().dims3()?;
        if width != 3 * self.heads * self.dim || !fused_fits(batch, seq, self.dim)? {
            bail!("{what}: unsupported shape {:?} for {} heads of {}", qkv.1.dims(), self.heads, self.dim);
        }
        if bias.1.shape().elem_count() != batch * seq || bias.0.dtype() != qkv.0.dtype() {
            bail!("{what}: bias {:?} does not match {:?}", bias.1.dims(), qkv.1.dims());
        }
        if !(qkv.1.start_offset() * qkv.0.dtype().size_in_bytes()).is_multiple_of(16) {
            bail!("{what}: q, k and v must start on a 16-byte boundary");
        }
        let name = format!("fused_attention_{}_d{}", suffix(qkv.0.dtype())?, self.dim);
        let device = qkv.0.device.clone();
        let input = view::<T>(qkv.0, qkv.1, what)?;
        let bias = view::<T>(bias.0, bias.1, what)?;
        let hidden = self.heads * self.dim;
        // SAFETY: every (text, position, head, feature) output is written by the kernel.
        let mut output = unsafe { device.alloc::<T>(batch * seq * hidden)? };
        u32_of(batch * seq * width, what)?;
        let func = device.get_or_load_custom_func(&name, ATTENTION_MODULE, ATTENTION_PTX)?;
        let (seq_u, heads_u) = (u32_of(seq, what)?, u32_of(self.heads, what)?);
        let config = LaunchConfig {
            grid_dim: (u32_of(seq.div_ceil(FUSED_TILE), what)?, heads_u, u32_of(batch, what)?),
            block_dim: (FUSED_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut builder = func.builder();
        builder.arg(&input).arg(&bias).arg(&mut output).arg(&seq_u).arg(&heads_u).arg(&self.scale);
        // SAFETY: grid (query tiles, heads, texts) of 256 threads as the kernel expects; seq <= 128
        // keys and the head size were checked; the arguments match the kernel's signature.
        unsafe { builder.launch(config) }.map_err(|e| cuda_err(&name, e))?;
        Ok((CudaStorage::wrap_cuda_slice(output, device), Shape::from((batch, seq, hidden))))
    }
}

impl CustomOp2 for FusedAttention {
    fn name(&self) -> &'static str {
        "fused-attention"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        bail!("fused-attention runs on CUDA only")
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

#[derive(Clone, Copy)]
pub(super) enum Permute {
    /// (batch, seq, 3 * heads * dim) -> (3, batch, heads, seq, dim)
    Split,
    /// (batch, heads, seq, dim) -> (batch, seq, heads * dim)
    Merge,
}

pub(super) struct HeadPermute {
    pub kind: Permute,
    pub heads: usize,
}

impl HeadPermute {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        storage: &CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let what = "head permute";
        let input = view::<T>(storage, layout, what)?;
        let dims = layout.shape().dims();
        let (batch, seq, heads, dim, shape) = match (self.kind, dims) {
            (Permute::Split, &[batch, seq, width]) => {
                let dim = width / 3 / self.heads;
                (batch, seq, self.heads, dim, Shape::from((3, batch, self.heads, seq, dim)))
            }
            (Permute::Merge, &[batch, heads, seq, dim]) => {
                (batch, seq, heads, dim, Shape::from((batch, seq, heads * dim)))
            }
            _ => bail!("{what}: unexpected shape {dims:?}"),
        };
        let elements = layout.shape().elem_count();
        if elements != shape.elem_count() {
            bail!("{what}: {dims:?} does not split into {} heads", self.heads);
        }
        // Move 16-byte units when a head row and the start are 16-byte aligned (full-width loads).
        let element = std::mem::size_of::<T>();
        let row_bytes = dim * element;
        let offset_bytes = layout.start_offset() * element;
        let unit = [16, 4, 2]
            .into_iter()
            .find(|&u| row_bytes.is_multiple_of(u) && offset_bytes.is_multiple_of(u) && u >= element);
        let Some(unit) = unit else { bail!("{what}: head size {dim} is not a whole number of units") };
        let kernel = match self.kind {
            Permute::Split => "split_heads",
            Permute::Merge => "merge_heads",
        };
        let name = format!("{kernel}_u{}", unit * 8);
        let device = storage.device.clone();
        // SAFETY: the permute writes every output element.
        let mut output = unsafe { device.alloc::<T>(elements)? };
        let func = device.get_or_load_custom_func(&name, ATTENTION_MODULE, ATTENTION_PTX)?;
        let units = elements * element / unit;
        u32_of(units, what)?;
        let units_per_row = u32_of(row_bytes / unit, what)?;
        let (batch, seq, heads) = (u32_of(batch, what)?, u32_of(seq, what)?, u32_of(heads, what)?);
        let mut builder = func.builder();
        builder.arg(&input).arg(&mut output).arg(&batch).arg(&seq).arg(&heads).arg(&units_per_row);
        // SAFETY: argument types and order match the kernel's signature; sizes were checked.
        unsafe { builder.launch(grid(units)?) }.map_err(|e| cuda_err(&name, e))?;
        Ok((CudaStorage::wrap_cuda_slice(output, device), shape))
    }
}

impl CustomOp1 for HeadPermute {
    fn name(&self) -> &'static str {
        "head-permute"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        bail!("head-permute runs on CUDA only")
    }

    fn cuda_fwd(&self, storage: &CudaStorage, layout: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        with_float_type!(storage.dtype(), T, self.run::<T>(storage, layout))
    }
}

/// The softmax's `half_window` for no sliding window (BERT, ModernBERT's global layers).
pub(super) const NO_WINDOW: u32 = u32::MAX;

pub(super) struct MaskedSoftmax {
    pub scale: f32,
    /// heads * queries: the score rows that share one text's padding bias.
    pub rows_per_batch: usize,
    /// Keys farther than this from their query are blocked (ModernBERT's local layers; the
    /// scores must then be square per (text, head)); `NO_WINDOW` blocks none.
    pub half_window: u32,
}

impl MaskedSoftmax {
    pub(super) fn run<T: CudaDType + DeviceRepr>(
        &self,
        scores: &mut CudaStorage,
        scores_layout: &Layout,
        bias: &CudaStorage,
        bias_layout: &Layout,
    ) -> candle_core::Result<()> {
        let half_window = self.half_window;
        let what = "masked softmax";
        let dtype = scores.dtype();
        let cols = *scores_layout.dims().last().unwrap_or(&0);
        let rows = scores_layout.shape().elem_count() / cols.max(1);
        let batches = rows / self.rows_per_batch.max(1);
        if bias_layout.shape().elem_count() != batches * cols {
            bail!("{what}: bias {:?} does not match scores {:?}", bias_layout.dims(), scores_layout.dims());
        }
        if half_window != NO_WINDOW && !self.rows_per_batch.is_multiple_of(cols.max(1)) {
            bail!("{what}: a window needs square scores, got {:?}", scores_layout.dims());
        }
        // Lanes per row: the fewest (8, 16 or 32) that hold the row in 16 registers each, so short
        // rows share a warp instead of leaving most of it idle.
        let vec = vector_width(dtype, cols, &[scores_layout, bias_layout]);
        let group = [8, 16, 32].into_iter().find(|g| g * SOFTMAX_VALUES_PER_LANE >= cols);
        let (name, lanes) = match group {
            Some(group) => (format!("masked_softmax_{}_v{vec}_g{group}", suffix(dtype)?), group),
            None => (format!("masked_softmax_long_{}", suffix(dtype)?), 32),
        };
        let device = scores.device.clone();
        let bias = view::<T>(bias, bias_layout, what)?;
        let mut values = view_mut::<T>(scores, scores_layout, what)?;
        let func = device.get_or_load_custom_func(&name, ATTENTION_MODULE, ATTENTION_PTX)?;
        let (rows_u, cols_u, per_batch) =
            (u32_of(rows, what)?, u32_of(cols, what)?, u32_of(self.rows_per_batch, what)?);
        let mut builder = func.builder();
        builder.arg(&mut values).arg(&bias).arg(&self.scale).arg(&rows_u).arg(&cols_u).arg(&per_batch);
        builder.arg(&half_window);
        // SAFETY: `lanes` threads per row; the arguments match the kernel's signature.
        unsafe { builder.launch(grid(rows * lanes)?) }.map_err(|e| cuda_err(&name, e))?;
        Ok(())
    }
}

impl InplaceOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> candle_core::Result<()> {
        bail!("masked-softmax runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        s: &mut CudaStorage,
        l: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> candle_core::Result<()> {
        with_float_type!(s.dtype(), T, self.run::<T>(s, l, b, bl))
    }
}
