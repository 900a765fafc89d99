//! vsr's inference core: BERT-family encoders on candle, with classification and embedding heads.
//!
//! Rust returns numbers (probabilities, embeddings, token offsets); Python decides what they mean.

pub mod bundle;
pub mod cpu;
#[cfg(feature = "cuda")]
mod cuda_graphs;
pub mod device;
pub mod error;
pub mod model;
pub mod pooling;
pub mod tokenize;
pub mod weights;
pub mod wordpiece;

#[cfg(feature = "python")]
mod python;

pub use bundle::{Bundle, HeadOutput, TokenScores};
pub use error::{Error, Result};
