//! Pooling token states into one vector per text, and L2 normalisation. Done in float32 whatever
//! the model dtype: summing hundreds of bfloat16 values loses the digits that cosine similarity and
//! classification margins depend on.

use candle_core::{DType, Tensor, D};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The first token's state ([CLS]).
    Cls,
    /// The mean over real (unmasked) tokens.
    Mean,
}

impl Pooling {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "cls" => Ok(Pooling::Cls),
            "mean" => Ok(Pooling::Mean),
            other => Err(Error::Argument(format!("unknown pooling {other:?}: expected mean or cls"))),
        }
    }

    /// (batch, seq, hidden) states and a (batch, seq) 0/1 mask -> (batch, hidden) float32.
    pub fn pool(self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if self == Pooling::Mean && mask.dtype() == DType::U32 && crate::model::cuda_ops::supported(hidden) {
            return crate::model::cuda_ops::masked_mean_pool(hidden, mask);
        }
        let hidden = hidden.to_dtype(DType::F32)?;
        match self {
            // contiguous: a strided row view is fine for the CPU's gemm, not for cuBLAS.
            Pooling::Cls => Ok(hidden.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?),
            Pooling::Mean => {
                // Padding must be masked out, or short prompts in a long batch drift toward the
                // pad vector.
                let mask = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
                let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
                let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
                Ok(summed.broadcast_div(&counts)?)
            }
        }
    }
}

/// Divide each row by its L2 norm (rows of zeros stay zeros).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norms = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
    Ok(x.broadcast_div(&norms)?)
}
