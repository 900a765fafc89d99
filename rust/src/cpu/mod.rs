//! The CPU encoder path: BERT layers on plain float32 buffers with weights packed at load,
//! one thread pool, fused row operations, and optional int8 or bfloat16 products (`dtype="int8"`,
//! `dtype="bfloat16"`).
//!
//! candle's CPU ops remain for everything else (embeddings, heads, ModernBERT); this path runs
//! the layers, where nearly all of a pass's time goes.

mod attention;
mod gemm;
mod layer;
mod ops;
mod pool;
mod quant;
#[cfg(test)]
mod speed;

/// Deterministic test inputs in [-0.5, 0.5) (a linear congruential generator), shared by the
/// kernels' tests and speed tests.
#[cfg(test)]
fn test_values(count: usize, seed: u32) -> Vec<f32> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

pub(crate) use layer::{run_layers, CpuLayer, DenseWeights, LayerWeights};
pub(crate) use pool::install;

/// Multiply-accumulates below which a product runs on one thread: waking the other core costs
/// ~10-20 us, which is most of what a 1 M MAC product takes.
const PARALLEL_MACS: usize = 1 << 21;

/// How the layers' matrix products are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    Float32,
    /// Weights in int8 per output channel, activations quantized per row at run time.
    Int8,
    /// Weights and activations rounded to bfloat16 in the products, summed in float32
    /// (`dtype="bfloat16"` on a CPU); everything else in float32.
    Bf16,
}

/// The instruction set the kernels are compiled for, detected once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    /// The best the CPU has, or a lower one named by `VSR_CPU_ISA` (`avx2`, `portable`), which
    /// runs the fallback kernels on a machine with AVX-512 (tests of the paths CI may take).
    pub(crate) fn detect() -> Isa {
        let best = Isa::best();
        let wanted = match std::env::var("VSR_CPU_ISA").as_deref() {
            Ok("avx2") => Isa::Avx2,
            Ok("portable") => Isa::Portable,
            _ => return best,
        };
        let rank = |isa: Isa| match isa {
            Isa::Avx512 => 2,
            Isa::Avx2 => 1,
            Isa::Portable => 0,
        };
        if rank(wanted) <= rank(best) {
            wanted
        } else {
            best
        }
    }

    fn best() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("fma")
            {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    #[cfg(test)]
    pub(crate) fn available() -> Vec<Isa> {
        let best = Isa::best();
        [Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .filter(|isa| match best {
                Isa::Avx512 => true,
                Isa::Avx2 => *isa != Isa::Avx512,
                Isa::Portable => *isa == Isa::Portable,
            })
            .collect()
    }
}
