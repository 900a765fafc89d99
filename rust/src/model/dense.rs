//! A linear layer: candle's, or on CUDA in half precision one whose bias add is fused into the
//! product (see `cuda_linear.rs`).

use candle_core::{Module, Tensor};
use candle_nn::Linear;

use crate::error::Result;

pub struct Dense {
    linear: Linear,
    #[cfg(feature = "cuda")]
    fused: Option<crate::model::cuda_linear::BiasLinear>,
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
        })
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
