//! Row-wise kernels: residual add + layer norm, embeddings + layer norm, GELU.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, CudaStorage};
use candle_core::{bail, CpuStorage, CustomOp1, DType, InplaceOp1, InplaceOp3, Layout, Shape, Tensor};

use super::{cuda_err, grid, suffix, u32_of, vector_width, view, view_mut, with_float_type, with_storage};
use super::{MAX_NORM_HIDDEN, MODULE, PTX};
use crate::error::Result;

/// LayerNorm(x + residual) with gamma and beta packed in `params` (2, hidden); overwrites `x`.
pub fn add_layer_norm(x: Tensor, residual: &Tensor, params: &Tensor, eps: f64) -> Result<Tensor> {
    let x = x.contiguous()?;
    x.inplace_op3(&residual.contiguous()?, params, &AddLayerNorm { eps: eps as f32 })?;
    Ok(x)
}

/// BERT's embeddings for `ids` (batch, seq) u32: LayerNorm(word[id] + position[s] + token type),
/// with `params` (3, hidden) packing gamma, beta and the token-type row.
pub fn embed_layer_norm(
    ids: &Tensor,
    word: &Tensor,
    position: &Tensor,
    params: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    let op = EmbedLayerNorm {
        word: word.clone(),
        position: position.clone(),
        params: params.clone(),
        eps: eps as f32,
    };
    Ok(ids.contiguous()?.apply_op1_no_bwd(&op)?)
}

/// Exact (erf) GELU; overwrites `x`.
pub fn gelu_erf(x: Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    x.inplace_op1(&GeluErf)?;
    Ok(x)
}

fn check_hidden(what: &str, hidden: usize) -> candle_core::Result<()> {
    if hidden > MAX_NORM_HIDDEN {
        bail!("{what}: hidden size {hidden} is above {MAX_NORM_HIDDEN}");
    }
    Ok(())
}

struct AddLayerNorm {
    eps: f32,
}

impl AddLayerNorm {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        x: (&mut CudaStorage, &Layout),
        residual: (&CudaStorage, &Layout),
        params: (&CudaStorage, &Layout),
    ) -> candle_core::Result<()> {
        let what = "add + layer norm";
        let dtype = x.0.dtype();
        let hidden = *x.1.dims().last().unwrap_or(&0);
        let rows = x.1.shape().elem_count() / hidden.max(1);
        if residual.1.shape() != x.1.shape() || params.1.shape().elem_count() != 2 * hidden {
            bail!(
                "{what}: shapes {:?}, {:?}, {:?} do not match",
                x.1.dims(),
                residual.1.dims(),
                params.1.dims()
            );
        }
        check_hidden(what, hidden)?;
        let vec = vector_width(dtype, hidden, &[x.1, residual.1, params.1]);
        let name = format!("add_layer_norm_{}_v{vec}", suffix(dtype)?);
        let device = x.0.device.clone();
        let residual = view::<T>(residual.0, residual.1, what)?;
        let params = view::<T>(params.0, params.1, what)?;
        let mut values = view_mut::<T>(x.0, x.1, what)?;
        let func = device.get_or_load_custom_func(&name, MODULE, PTX)?;
        let (rows_u, hidden_u) = (u32_of(rows, what)?, u32_of(hidden, what)?);
        let mut builder = func.builder();
        builder.arg(&mut values).arg(&residual).arg(&params).arg(&rows_u).arg(&hidden_u).arg(&self.eps);
        // SAFETY: one warp per row; the arguments match the kernel's signature.
        unsafe { builder.launch(grid(rows * 32)?) }.map_err(|e| cuda_err(&name, e))?;
        Ok(())
    }
}

impl InplaceOp3 for AddLayerNorm {
    fn name(&self) -> &'static str {
        "add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<()> {
        bail!("add-layer-norm runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        x: &mut CudaStorage,
        xl: &Layout,
        residual: &CudaStorage,
        rl: &Layout,
        params: &CudaStorage,
        pl: &Layout,
    ) -> candle_core::Result<()> {
        with_float_type!(x.dtype(), T, self.run::<T>((x, xl), (residual, rl), (params, pl)))
    }
}

struct EmbedLayerNorm {
    word: Tensor,
    position: Tensor,
    params: Tensor,
    eps: f32,
}

impl EmbedLayerNorm {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        ids: &CudaStorage,
        ids_layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let what = "embeddings + layer norm";
        let (batch, seq) = ids_layout.shape().dims2()?;
        let (vocab, hidden) = self.word.dims2()?;
        check_hidden(what, hidden)?;
        if self.position.dim(0)? < seq || self.params.dims2()? != (3, hidden) {
            bail!("{what}: {seq} positions or params {:?} do not fit hidden {hidden}", self.params.dims());
        }
        let dtype = self.word.dtype();
        let rows = batch * seq;
        let device = ids.device.clone();
        let ids = view::<u32>(ids, ids_layout, what)?;
        // SAFETY: the kernel writes every row.
        let mut out = unsafe { device.alloc::<T>(rows * hidden)? };
        with_storage(&self.word, what, |word_s, word_l| {
            with_storage(&self.position, what, |pos_s, pos_l| {
                with_storage(&self.params, what, |params_s, params_l| {
                    let vec = vector_width(dtype, hidden, &[word_l, pos_l, params_l]);
                    let name = format!("embed_layer_norm_{}_v{vec}", suffix(dtype)?);
                    let (word, position) = (view::<T>(word_s, word_l, what)?, view::<T>(pos_s, pos_l, what)?);
                    let params = view::<T>(params_s, params_l, what)?;
                    let token_type = params.slice(2 * hidden..);
                    let func = device.get_or_load_custom_func(&name, MODULE, PTX)?;
                    let (rows_u, seq_u) = (u32_of(rows, what)?, u32_of(seq, what)?);
                    let (hidden_u, vocab_u) = (u32_of(hidden, what)?, u32_of(vocab, what)?);
                    let mut builder = func.builder();
                    builder.arg(&ids).arg(&word).arg(&position).arg(&token_type).arg(&params).arg(&mut out);
                    builder.arg(&rows_u).arg(&seq_u).arg(&hidden_u).arg(&vocab_u).arg(&self.eps);
                    // SAFETY: one warp per row; the arguments match the kernel's signature.
                    unsafe { builder.launch(grid(rows * 32)?) }.map_err(|e| cuda_err(&name, e))?;
                    Ok(())
                })
            })
        })?;
        Ok((CudaStorage::wrap_cuda_slice(out, device), Shape::from((batch, seq, hidden))))
    }
}

impl CustomOp1 for EmbedLayerNorm {
    fn name(&self) -> &'static str {
        "embed-layer-norm"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        bail!("embed-layer-norm runs on CUDA only")
    }

    fn cuda_fwd(&self, ids: &CudaStorage, layout: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        if ids.dtype() != DType::U32 {
            bail!("embed-layer-norm: ids must be u32, got {:?}", ids.dtype());
        }
        with_float_type!(self.word.dtype(), T, self.run::<T>(ids, layout))
    }
}

struct GeluErf;

impl GeluErf {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        x: &mut CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<()> {
        let what = "gelu";
        let dtype = x.dtype();
        let elements = layout.shape().elem_count();
        let vec = vector_width(dtype, elements, &[layout]);
        let name = format!("gelu_erf_{}_v{vec}", suffix(dtype)?);
        let device = x.device.clone();
        let mut values = view_mut::<T>(x, layout, what)?;
        let func = device.get_or_load_custom_func(&name, MODULE, PTX)?;
        let n = u32_of(elements, what)?;
        let mut builder = func.builder();
        builder.arg(&mut values).arg(&n);
        // SAFETY: the arguments match the kernel's signature.
        unsafe { builder.launch(grid(elements / vec)?) }.map_err(|e| cuda_err(&name, e))?;
        Ok(())
    }
}

impl InplaceOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf"
    }

    fn cpu_fwd(&self, _: &mut CpuStorage, _: &Layout) -> candle_core::Result<()> {
        bail!("gelu-erf runs on CUDA only")
    }

    fn cuda_fwd(&self, x: &mut CudaStorage, layout: &Layout) -> candle_core::Result<()> {
        with_float_type!(x.dtype(), T, self.run::<T>(x, layout))
    }
}
