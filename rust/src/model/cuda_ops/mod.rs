//! Launchers for the fused encoder kernels of rust/kernels/encoder_ops.cu and attention_ops.cu
//! (PTX built by build.rs).
//!
//! Each op is a candle custom op, so it takes part in candle's storage locking like any other.
//! The in-place ones overwrite tensors the caller has just produced and owns (a matmul's output),
//! which saves an allocation per op. All expect contiguous inputs and fail loudly otherwise; the
//! callers (`layers.rs`, `bert.rs`, `modernbert.rs`, `pooling.rs`) use them only on CUDA in
//! float32/16/bfloat16.

mod attention;
mod attention_gemm;
mod modernbert;
mod pooling;
mod rows;

use candle_core::cuda_backend::cudarc::driver::{CudaView, CudaViewMut, LaunchConfig};
use candle_core::cuda_backend::{CudaDType, CudaStorage};
use candle_core::{bail, DType, Layout, Storage, Tensor};

pub use attention::self_attention;
pub use modernbert::{gated_gelu, modernbert_generic_forced, split_heads, windowed_attention};
pub use pooling::{masked_mean_pool, padding_bias};
pub use rows::{add_layer_norm, embed_layer_norm, gelu_erf};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/encoder_ops.ptx"));
const MODULE: &str = "vsr_encoder_ops";
/// The attention kernels (permutes, masked softmax, fused attention, batched-product pointers).
const ATTENTION_PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/attention_ops.ptx"));
const ATTENTION_MODULE: &str = "vsr_attention_ops";
const BLOCK: u32 = 256;
/// The row kernels keep a row in 32 registers per lane of one warp.
pub const MAX_NORM_HIDDEN: usize = 1024;
/// The softmax keeps a row of scores in 16 registers per lane, on up to 32 lanes (512 keys).
const SOFTMAX_VALUES_PER_LANE: usize = 16;

/// True when the fused kernels can run on `x`: on CUDA, in a float type they are built for.
pub fn supported(x: &Tensor) -> bool {
    x.device().is_cuda() && matches!(x.dtype(), DType::F32 | DType::F16 | DType::BF16)
}

fn suffix(dtype: DType) -> candle_core::Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "f32",
        DType::F16 => "f16",
        DType::BF16 => "bf16",
        other => bail!("vsr CUDA kernels: unsupported dtype {other:?}"),
    })
}

/// Elements per 16-byte vector for `dtype` (the "wide" kernels' VEC).
fn wide(dtype: DType) -> usize {
    16 / dtype.size_in_bytes()
}

/// The widest vector (16 bytes, else 1 element) that divides `row` and every start offset.
fn vector_width(dtype: DType, row: usize, layouts: &[&Layout]) -> usize {
    let wide = wide(dtype);
    if row.is_multiple_of(wide) && layouts.iter().all(|l| l.start_offset().is_multiple_of(wide)) {
        wide
    } else {
        1
    }
}

/// An on/off switch from the environment for comparing kernel paths: unset or `0` off, `1` on,
/// anything else an error (reported at the first forward that reads it).
fn env_switch(name: &str) -> std::result::Result<bool, String> {
    match std::env::var(name) {
        Err(_) => Ok(false),
        Ok(value) => match value.trim() {
            "0" => Ok(false),
            "1" => Ok(true),
            _ => Err(format!("{name} must be 0 or 1, got {value:?}")),
        },
    }
}

fn cuda_err(what: &str, e: impl std::fmt::Debug) -> candle_core::Error {
    candle_core::Error::Cuda(format!("{what}: {e:?}").into())
}

fn view<'a, T: CudaDType>(
    storage: &'a CudaStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<CudaView<'a, T>> {
    if !layout.is_contiguous() {
        bail!("{what}: expects a contiguous tensor");
    }
    Ok(storage.as_cuda_slice::<T>()?.slice(layout.start_offset()..))
}

fn view_mut<'a, T: CudaDType>(
    storage: &'a mut CudaStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<CudaViewMut<'a, T>> {
    if !layout.is_contiguous() {
        bail!("{what}: expects a contiguous tensor");
    }
    Ok(storage.as_cuda_slice_mut::<T>()?.slice_mut(layout.start_offset()..))
}

/// Runs `f` on the CUDA storage of `tensor` (a weight an op reads besides its inputs).
fn with_storage<R>(
    tensor: &Tensor,
    what: &str,
    f: impl FnOnce(&CudaStorage, &Layout) -> candle_core::Result<R>,
) -> candle_core::Result<R> {
    let (storage, layout) = tensor.storage_and_layout();
    match &*storage {
        Storage::Cuda(storage) => f(storage, layout),
        _ => bail!("{what}: expects a CUDA tensor"),
    }
}

/// Enough blocks of `BLOCK` threads for `threads` threads (the element kernels also loop).
fn grid(threads: usize) -> candle_core::Result<LaunchConfig> {
    let blocks = threads.div_ceil(BLOCK as usize).max(1);
    let blocks = u32::try_from(blocks).map_err(|_| cuda_err("launch", "grid too large"))?;
    Ok(LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 })
}

fn u32_of(n: usize, what: &str) -> candle_core::Result<u32> {
    u32::try_from(n).map_err(|_| cuda_err(what, format!("{n} does not fit the kernel's 32-bit indices")))
}

/// Runs `$body` with `$t` bound to the Rust type of `$dtype`.
macro_rules! with_float_type {
    ($dtype:expr, $t:ident, $body:expr) => {
        match $dtype {
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            candle_core::DType::F16 => {
                type $t = half::f16;
                $body
            }
            candle_core::DType::BF16 => {
                type $t = half::bf16;
                $body
            }
            other => candle_core::bail!("vsr CUDA kernels: unsupported dtype {other:?}"),
        }
    };
}
use with_float_type;
