//! Linear layers on CUDA in half precision: the bias is added by cuBLASLt's epilogue inside the
//! matrix product.
//!
//! candle adds a bias with a separate broadcast kernel whose per-element index arithmetic made it
//! the most expensive kernel of a BERT forward on an H100 (16 of 25.6 ms at 64 x 128 tokens, see
//! benches/results/profile_gpu_h100.log). The epilogue writes each output once, with the bias
//! already in. Float32 keeps candle's path: cuBLASLt's f32 product runs in TF32, which would break
//! float32 parity.
//!
//! cuBLASLt's handle and the per-shape plans live in `cuda_lt/`, how their algorithms are
//! chosen and tuned in `cuda_lt/algos.rs`.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{DevicePtr, DevicePtrMut, DeviceRepr};
use candle_core::cuda_backend::{CudaDType, CudaStorage};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};

use super::cuda_lt::{state, Lt, Operands};
use crate::error::Result;

/// y = x · Wᵀ + b with the bias in the product's epilogue; `gelu`: y = GELU(x · Wᵀ + b), the
/// tanh-approximated GELU also in the epilogue (cuBLASLt's GELU_BIAS).
///
/// The separate GELU kernel read and wrote the whole intermediate activation: 1.6 of 13.5 ms of
/// GPU time for BERT-base at 256 x 128 tokens on an H200 (profile_gpu_h200_timeline.log).
/// cuBLASLt's GELU is the tanh form; the exact (erf) GELU differs from it by at most 4.7e-4 (at
/// x = -2.7), under a thirtieth of bfloat16's spacing at 1.0, so bfloat16 models with the exact
/// GELU take it too (`BiasLinear::gelu_epilogue_for`); float16 keeps the exact kernel.
pub struct BiasLinear {
    lt: Arc<Lt>,
    gelu: bool,
}

impl BiasLinear {
    /// Some(op) when `weight` lives on a CUDA device in float16/bfloat16; None otherwise.
    pub fn for_weight(weight: &Tensor) -> Result<Option<Self>> {
        match (weight.device(), weight.dtype()) {
            (candle_core::Device::Cuda(device), DType::BF16 | DType::F16) => {
                Ok(Some(BiasLinear { lt: state(device)?, gelu: false }))
            }
            _ => Ok(None),
        }
    }

    /// The same product with GELU in the epilogue, where it stands for `activation` on a
    /// `dtype` model: the tanh GELU in either half type, the exact GELU in bfloat16 (see above).
    /// `VSR_GELU_EPILOGUE=0` turns it off.
    pub fn with_gelu(&self, activation: crate::model::layers::Activation, dtype: DType) -> Option<Self> {
        use crate::model::layers::Activation;
        if std::env::var("VSR_GELU_EPILOGUE").is_ok_and(|v| v == "0") {
            return None;
        }
        let fits = match activation {
            Activation::GeluTanh => true,
            Activation::Gelu => dtype == DType::BF16,
            _ => false,
        };
        fits.then(|| BiasLinear { lt: self.lt.clone(), gelu: true })
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
        {
            let (x_ptr, _x_sync) = x_slice.device_ptr(&stream);
            let (w_ptr, _w_sync) = w_slice.device_ptr(&stream);
            let (b_ptr, _b_sync) = b_slice.device_ptr(&stream);
            let (o_ptr, _o_sync) = out.device_ptr_mut(&stream);
            let key = (x_storage.dtype(), out_dim, rows, in_dim, self.gelu);
            let operands = Operands { x: x_ptr, weight: w_ptr, bias: b_ptr, out: o_ptr };
            self.lt.run(key, operands, &stream)?;
        }
        let mut shape = x_layout.shape().dims().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = out_dim;
        }
        Ok((CudaStorage::wrap_cuda_slice(out, device), Shape::from(shape)))
    }
}

impl CustomOp3 for BiasLinear {
    fn name(&self) -> &'static str {
        if self.gelu {
            "bias-gelu-linear"
        } else {
            "bias-linear"
        }
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
