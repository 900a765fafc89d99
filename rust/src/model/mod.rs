//! Encoders behind one type. Each architecture owns its model code: candle-transformers' versions
//! build attention masks as `(1 - m) * f32::MIN` (NaN in half precision) or hard-code f32, and run
//! Q, K and V as three matmuls where one fused matmul does.

mod bert;
pub mod branch;
pub mod config;
#[cfg(feature = "cuda")]
pub(crate) mod cuda_linear;
#[cfg(feature = "cuda")]
pub(crate) mod cuda_lt;
#[cfg(feature = "cuda")]
pub(crate) mod cuda_ops;
mod dense;
pub mod heads;
mod layers;
mod modernbert;

use candle_core::Tensor;

use crate::error::Result;
use crate::weights::Weights;
pub use config::{Architecture, EncoderConfig};

pub enum Encoder {
    Bert(bert::Bert),
    ModernBert(modernbert::ModernBert),
}

impl Encoder {
    /// Build the encoder named by `config` from `weights` (whose prefix is set here).
    /// `precision`: the CPU layer path's (BERT on a CPU in float32), or None for candle's ops.
    pub fn load(
        config: &EncoderConfig,
        weights: Weights,
        precision: Option<crate::cpu::Precision>,
    ) -> Result<(Self, Weights)> {
        match config.architecture {
            Architecture::Bert => {
                let weights = weights
                    .find_prefix("embeddings.word_embeddings.weight", &["", "bert.", "model.", "encoder."])?;
                Ok((Encoder::Bert(bert::Bert::load(config, &weights, precision)?), weights))
            }
            Architecture::ModernBert => {
                let weights = weights.find_prefix("embeddings.tok_embeddings.weight", &["model.", ""])?;
                Ok((Encoder::ModernBert(modernbert::ModernBert::load(config, &weights)?), weights))
            }
        }
    }

    /// Last hidden states (batch, seq, hidden) for `ids` (batch, seq) u32 and `mask` (batch, seq)
    /// u8 (1 = real token).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        match self {
            Encoder::Bert(model) => model.forward(ids, mask),
            Encoder::ModernBert(model) => model.forward(ids, mask),
        }
    }
}
