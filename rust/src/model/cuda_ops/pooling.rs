//! Per-batch helpers around the layers: the attention bias from the mask, and mean pooling.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaDType, CudaStorage};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};

use super::{cuda_err, grid, suffix, u32_of, view, with_float_type, MODULE, PTX};
use crate::error::Result;

/// (batch, seq) additive bias in `dtype` from a u32 0/1 mask: 0 for real tokens, `blocked` for
/// padding.
pub fn padding_bias(mask: &Tensor, dtype: DType, blocked: f32) -> Result<Tensor> {
    Ok(mask.contiguous()?.apply_op1_no_bwd(&PaddingBias { dtype, blocked })?)
}

/// (batch, seq, hidden) states and a u32 (batch, seq) mask -> (batch, hidden) float32 means over
/// the real tokens.
pub fn masked_mean_pool(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    Ok(hidden.contiguous()?.apply_op2_no_bwd(&mask.contiguous()?, &MaskedMeanPool)?)
}

fn check_mask(storage: &CudaStorage, what: &str) -> candle_core::Result<()> {
    if storage.dtype() != DType::U32 {
        bail!("{what}: the mask must be u32, got {:?}", storage.dtype());
    }
    Ok(())
}

struct PaddingBias {
    dtype: DType,
    blocked: f32,
}

impl PaddingBias {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        mask: &CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let what = "padding bias";
        let n = layout.shape().elem_count();
        let name = format!("padding_bias_{}", suffix(self.dtype)?);
        let device = mask.device.clone();
        let mask = view::<u32>(mask, layout, what)?;
        // SAFETY: the kernel writes every element.
        let mut bias = unsafe { device.alloc::<T>(n)? };
        let func = device.get_or_load_custom_func(&name, MODULE, PTX)?;
        let n_u = u32_of(n, what)?;
        let mut builder = func.builder();
        builder.arg(&mask).arg(&mut bias).arg(&n_u).arg(&self.blocked);
        // SAFETY: the arguments match the kernel's signature.
        unsafe { builder.launch(grid(n)?) }.map_err(|e| cuda_err(&name, e))?;
        Ok((CudaStorage::wrap_cuda_slice(bias, device), layout.shape().clone()))
    }
}

impl CustomOp1 for PaddingBias {
    fn name(&self) -> &'static str {
        "padding-bias"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        bail!("padding-bias runs on CUDA only")
    }

    fn cuda_fwd(&self, mask: &CudaStorage, layout: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        check_mask(mask, "padding bias")?;
        with_float_type!(self.dtype, T, self.run::<T>(mask, layout))
    }
}

struct MaskedMeanPool;

impl MaskedMeanPool {
    fn run<T: CudaDType + DeviceRepr>(
        &self,
        hidden: (&CudaStorage, &Layout),
        mask: (&CudaStorage, &Layout),
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let what = "mean pooling";
        let (batch, seq, width) = hidden.1.shape().dims3()?;
        if mask.1.shape().dims2()? != (batch, seq) {
            bail!("{what}: mask {:?} does not match states {:?}", mask.1.dims(), hidden.1.dims());
        }
        let name = format!("masked_mean_pool_{}", suffix(hidden.0.dtype())?);
        let device = hidden.0.device.clone();
        let states = view::<T>(hidden.0, hidden.1, what)?;
        let mask = view::<u32>(mask.0, mask.1, what)?;
        // SAFETY: the kernel writes every (text, feature) output.
        let mut out = unsafe { device.alloc::<f32>(batch * width)? };
        let func = device.get_or_load_custom_func(&name, MODULE, PTX)?;
        let (seq_u, width_u) = (u32_of(seq, what)?, u32_of(width, what)?);
        // 32 features per block, 8 warps splitting the positions (POOL_WARPS in the kernel).
        let config = LaunchConfig {
            grid_dim: (u32_of(width.div_ceil(32), what)?, u32_of(batch, what)?, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut builder = func.builder();
        builder.arg(&states).arg(&mask).arg(&mut out).arg(&seq_u).arg(&width_u);
        // SAFETY: grid (features / 32, texts) of 256 threads; the arguments match the kernel's signature.
        unsafe { builder.launch(config) }.map_err(|e| cuda_err(&name, e))?;
        Ok((CudaStorage::wrap_cuda_slice(out, device), Shape::from((batch, width))))
    }
}

impl CustomOp2 for MaskedMeanPool {
    fn name(&self) -> &'static str {
        "masked-mean-pool"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        bail!("masked-mean-pool runs on CUDA only")
    }

    fn cuda_fwd(
        &self,
        hidden: &CudaStorage,
        hl: &Layout,
        mask: &CudaStorage,
        ml: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        check_mask(mask, "mean pooling")?;
        with_float_type!(hidden.dtype(), T, self.run::<T>((hidden, hl), (mask, ml)))
    }
}
