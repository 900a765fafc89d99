//! Self-attention on fused QKV: a head-split permute, cuBLAS for the two products, one masked
//! softmax in place, and a head-merge permute.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, CudaStorage};
use candle_core::{bail, CpuStorage, CustomOp1, InplaceOp2, Layout, Shape, Tensor};

use super::SOFTMAX_VALUES_PER_LANE;
use super::{cuda_err, grid, suffix, u32_of, vector_width, view, view_mut, with_float_type, MODULE, PTX};
use crate::error::Result;

/// softmax(q kᵀ / sqrt(d) + bias) v from fused QKV (batch, seq, 3 * hidden), with `bias` the
/// (batch, seq) additive padding bias; returns (batch, seq, hidden).
pub fn self_attention(qkv: &Tensor, bias: &Tensor, heads: usize) -> Result<Tensor> {
    let (_, seq, three_hidden) = qkv.dims3()?;
    let dim = three_hidden / 3 / heads;
    let split = qkv.contiguous()?.apply_op1_no_bwd(&HeadPermute { kind: Permute::Split, heads })?;
    let (q, k, v) = (split.get(0)?, split.get(1)?, split.get(2)?);
    let scores = q.matmul(&k.t()?)?;
    let softmax = MaskedSoftmax { scale: 1.0 / (dim as f32).sqrt(), rows_per_batch: heads * seq };
    scores.inplace_op2(&bias.contiguous()?, &softmax)?;
    let context = scores.matmul(&v)?;
    Ok(context.apply_op1_no_bwd(&HeadPermute { kind: Permute::Merge, heads })?)
}

#[derive(Clone, Copy)]
enum Permute {
    /// (batch, seq, 3 * heads * dim) -> (3, batch, heads, seq, dim)
    Split,
    /// (batch, heads, seq, dim) -> (batch, seq, heads * dim)
    Merge,
}

struct HeadPermute {
    kind: Permute,
    heads: usize,
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
        let unit =
            [16, 4, 2].into_iter().find(|u| row_bytes % u == 0 && offset_bytes % u == 0 && *u >= element);
        let Some(unit) = unit else { bail!("{what}: head size {dim} is not a whole number of units") };
        let kernel = match self.kind {
            Permute::Split => "split_heads",
            Permute::Merge => "merge_heads",
        };
        let name = format!("{kernel}_u{}", unit * 8);
        let device = storage.device.clone();
        // SAFETY: the permute writes every output element.
        let mut output = unsafe { device.alloc::<T>(elements)? };
        let func = device.get_or_load_custom_func(&name, MODULE, PTX)?;
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

struct MaskedSoftmax {
    scale: f32,
    /// heads * queries: the score rows that share one text's padding bias.
    rows_per_batch: usize,
}

impl MaskedSoftmax {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        scores: &mut CudaStorage,
        scores_layout: &Layout,
        bias: &CudaStorage,
        bias_layout: &Layout,
    ) -> candle_core::Result<()> {
        let what = "masked softmax";
        let dtype = scores.dtype();
        let cols = *scores_layout.dims().last().unwrap_or(&0);
        let rows = scores_layout.shape().elem_count() / cols.max(1);
        let batches = rows / self.rows_per_batch.max(1);
        if bias_layout.shape().elem_count() != batches * cols {
            bail!("{what}: bias {:?} does not match scores {:?}", bias_layout.dims(), scores_layout.dims());
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
        let func = device.get_or_load_custom_func(&name, MODULE, PTX)?;
        let (rows_u, cols_u, per_batch) =
            (u32_of(rows, what)?, u32_of(cols, what)?, u32_of(self.rows_per_batch, what)?);
        let mut builder = func.builder();
        builder.arg(&mut values).arg(&bias).arg(&self.scale).arg(&rows_u).arg(&cols_u).arg(&per_batch);
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
