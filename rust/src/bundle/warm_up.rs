//! What a bundle runs at load so that requests do not pay one-off costs.

use super::Bundle;
use crate::error::Result;

/// Longest texts the product warm-up builds: longer ones would only grow attention's scores
/// (a ModernBERT reads 8,192 tokens), not the products' row counts.
#[cfg(feature = "cuda")]
const WARM_UP_MAX_SEQ: usize = 512;

impl Bundle {
    /// The first forward pays one-off costs: on a GPU, the JIT of candle's PTX kernels (seconds
    /// on a fresh machine), cuBLAS loading the kernels for each shape, the memory pool growing.
    /// Pay them at load rather than on the first requests: a padded pair (padding masks), and
    /// on a GPU a batch of the size busy traffic brings, then every row bucket of the products.
    pub(super) fn warm_up(&self) -> Result<()> {
        let pair = ["warm up".to_string(), "warm up with a longer text that pads the first".repeat(3)];
        self.run(&pair, None)?;
        if !self.device.is_cpu() {
            let batch: Vec<String> = (0..32).map(|i| format!("warm up text {i} ").repeat(12)).collect();
            self.run(&batch, None)?;
            #[cfg(feature = "cuda")]
            self.warm_up_products()?;
        }
        Ok(())
    }

    /// One eager pass per row bucket of the half-precision products (`cuda_lt/algos.rs`: texts x
    /// tokens from 16 up to the largest chunk), with GEMM tuning on: each bucket's algorithm and the
    /// candidates a graph recording times are run once, so every cuBLASLt kernel a request can
    /// meet is loaded now (~4-5 ms each on first use) and not on a request's path. Eager passes:
    /// no CUDA graph is recorded for these made-up shapes.
    #[cfg(feature = "cuda")]
    fn warm_up_products(&self) -> Result<()> {
        use super::chunks::GPU_CHUNKS;
        use crate::device::exclusive;
        use crate::model::cuda_lt::{row_buckets, with_tuning};
        use candle_core::{DType, Tensor};

        if !matches!(self.dtype, DType::BF16 | DType::F16) || self.precision.is_some() {
            return Ok(());
        }
        let token = self.tokenizer.tokenize_ids(&["warm up".to_string()])?.ids[0];
        let all: Vec<usize> = (0..self.heads.len()).collect();
        // A power of two, so texts x tokens is each bucket's row count exactly.
        let cap = self.max_length().clamp(1, WARM_UP_MAX_SEQ);
        let longest = 1usize << (usize::BITS - 1 - cap.leading_zeros());
        let _device = exclusive(&self.device);
        with_tuning(|| -> Result<()> {
            for rows in row_buckets(GPU_CHUNKS.tokens) {
                let seq = rows.min(longest);
                let texts = rows.div_ceil(seq);
                let ids = Tensor::full(token, (texts, seq), &self.device)?;
                let mask = Tensor::ones((texts, seq), DType::U32, &self.device)?;
                self.forward_heads(&ids, &mask, &all)?;
                self.device.synchronize()?;
            }
            Ok(())
        })
    }
}
