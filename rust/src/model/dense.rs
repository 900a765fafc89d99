//! A linear layer: candle's, or on CUDA in half precision one whose bias add is fused into the
//! product (see `cuda_linear.rs`).

use candle_core::{Module, Tensor};
use candle_nn::Linear;

use crate::error::Result;
use crate::model::layers::Activation;

pub struct Dense {
    linear: Linear,
    #[cfg(feature = "cuda")]
    fused: Option<crate::model::cuda_linear::BiasLinear>,
    /// The product with the activation in its epilogue too (`Dense::with_activation`).
    #[cfg(feature = "cuda")]
    fused_activation: Option<crate::model::cuda_linear::BiasLinear>,
    #[cfg(feature = "cuda")]
    activation_failed: std::sync::atomic::AtomicBool,
}

impl Dense {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Result<Self> {
        #[cfg(feature = "cuda")]
        let fused = match bias {
            Some(_) => crate::model::cuda_linear::BiasLinear::for_weight(&weight)?,
            None => None,
        };
        Ok(Dense {
            linear: Linear::new(weight, bias),
            #[cfg(feature = "cuda")]
            fused,
            #[cfg(feature = "cuda")]
            fused_activation: None,
            #[cfg(feature = "cuda")]
            activation_failed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Let `forward_activated` fuse `activation` into the product where the GPU path can (the
    /// GELU epilogue of cuda_linear.rs); elsewhere it applies the activation separately.
    #[cfg_attr(not(feature = "cuda"), allow(unused_mut, unused_variables))]
    pub fn with_activation(mut self, activation: Activation) -> Self {
        #[cfg(feature = "cuda")]
        {
            let dtype = self.linear.weight().dtype();
            self.fused_activation = self.fused.as_ref().and_then(|fused| fused.with_gelu(activation, dtype));
        }
        self
    }

    /// activation(x · Wᵀ + b).
    pub fn forward_activated(&self, x: &Tensor, activation: Activation) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let (Some(fused), Some(bias)) = (&self.fused_activation, self.linear.bias()) {
            use std::sync::atomic::Ordering;
            if !self.activation_failed.load(Ordering::Relaxed) {
                match fused.forward(x, self.linear.weight(), bias) {
                    Ok(y) => return Ok(y),
                    // No cuBLASLt algorithm for the epilogue on this GPU: unfused from now on.
                    Err(_) => self.activation_failed.store(true, Ordering::Relaxed),
                }
            }
        }
        activation.apply_owned(self.forward(x)?)
    }

    pub fn weight(&self) -> &Tensor {
        self.linear.weight()
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.linear.bias()
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let (Some(fused), Some(bias)) = (&self.fused, self.linear.bias()) {
            return fused.forward(x, self.linear.weight(), bias);
        }
        Ok(self.linear.forward(x)?)
    }
}
