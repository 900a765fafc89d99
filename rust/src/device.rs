//! Device and dtype selection: "cpu" always, "cuda" / "cuda:N" when built with the `cuda` feature.

use candle_core::{DType, Device};

use crate::cpu::Precision;
use crate::error::{Error, Result};

/// Parse a device name into a candle device.
pub fn parse_device(name: &str) -> Result<Device> {
    let name = name.trim().to_ascii_lowercase();
    if name == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match name.as_str() {
        "cuda" => Some(0),
        _ => name.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()),
    };
    match ordinal {
        Some(ordinal) => cuda_device(ordinal),
        None => {
            Err(Error::Device(format!("unknown device {name:?}: expected \"cpu\", \"cuda\" or \"cuda:N\"")))
        }
    }
}

#[cfg(feature = "cuda")]
fn cuda_device(ordinal: usize) -> Result<Device> {
    let device =
        Device::new_cuda(ordinal).map_err(|e| Error::Device(format!("cannot open cuda:{ordinal}: {e}")))?;
    keep_freed_memory_in_pool(&device)
        .map_err(|e| Error::Device(format!("cuda:{ordinal}: cannot configure the memory pool: {e}")))?;
    Ok(device)
}

/// candle allocates every intermediate tensor with `cuMemAllocAsync` from the device's default
/// memory pool. That pool's release threshold is 0: at each synchronisation (every forward pass
/// ends with one, copying outputs to the host) it hands freed memory back to the driver, and the
/// next pass maps its activations afresh. With no threshold, a pass reuses the memory of the one
/// before, as PyTorch's caching allocator does. Memory stays bounded by the largest pass.
#[cfg(feature = "cuda")]
fn keep_freed_memory_in_pool(device: &Device) -> std::result::Result<(), String> {
    use candle_core::cuda_backend::cudarc::driver::{result, sys};

    let cuda = device.as_cuda_device().map_err(|e| e.to_string())?;
    let context = cuda.cuda_stream().context().clone();
    if !context.has_async_alloc() {
        return Ok(()); // plain cuMemAlloc: no pool to configure
    }
    let mut threshold = u64::MAX;
    // SAFETY: the device handle comes from a live context; `threshold` is the u64 that
    // CU_MEMPOOL_ATTR_RELEASE_THRESHOLD takes and outlives the call.
    unsafe {
        let pool = result::device::get_default_mem_pool(context.cu_device()).map_err(|e| e.to_string())?;
        result::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(ordinal: usize) -> Result<Device> {
    Err(Error::Device(format!(
        "cuda:{ordinal} requested, but this build of vsr has no CUDA support; \
         install the CUDA wheel (built with `make build-cuda`) or use device=\"cpu\""
    )))
}

/// Holds a device for one caller's GPU work, from its first upload to its last download.
///
/// Threads that share a model would otherwise enqueue onto their own per-thread CUDA streams at
/// once, and the buffers a device shares between calls (cuBLAS and cuBLASLt workspaces) would be
/// written by two streams together: wrong results were measured that way (benches/stress_gpu.py).
/// A GPU runs one forward at a time anyway; callers tokenize outside the lock, so a second thread
/// prepares its batch while the first one computes. On the CPU there is nothing to hold.
pub fn exclusive(device: &Device) -> Option<std::sync::MutexGuard<'static, ()>> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    let ordinal = match device.location() {
        candle_core::DeviceLocation::Cuda { gpu_id } => gpu_id,
        _ => return None,
    };
    static LOCKS: OnceLock<Mutex<HashMap<usize, &'static Mutex<()>>>> = OnceLock::new();
    let lock = {
        let mut locks =
            LOCKS.get_or_init(|| Mutex::new(HashMap::new())).lock().unwrap_or_else(|e| e.into_inner());
        *locks.entry(ordinal).or_insert_with(|| Box::leak(Box::new(Mutex::new(()))))
    };
    // A panic while holding it leaves no state behind that the next caller could trip on.
    Some(lock.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The device's canonical name, as users write it.
pub fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(_) => match device.location() {
            candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
            _ => "cuda".to_string(),
        },
        _ => format!("{:?}", device.location()),
    }
}

/// Parse a dtype name; `None` picks float32 on CPU (its fastest exact path) and bfloat16 on GPUs
/// (tensor cores, and no overflow risk in activations, unlike float16).
pub fn parse_dtype(name: Option<&str>, device: &Device) -> Result<DType> {
    match name.map(|n| n.trim().to_ascii_lowercase()) {
        None => Ok(if device.is_cpu() { DType::F32 } else { DType::BF16 }),
        Some(n) => match n.as_str() {
            "float32" | "f32" | "fp32" => Ok(DType::F32),
            "float16" | "f16" | "fp16" | "half" => Ok(DType::F16),
            "bfloat16" | "bf16" => Ok(DType::BF16),
            _ => Err(Error::Argument(format!(
                "unknown dtype {n:?}: expected float32, float16, bfloat16 or int8 (CPU)"
            ))),
        },
    }
}

/// The weights' dtype and, on a CPU, the encoder layers' precision: "int8" loads float32 weights
/// and quantizes the layers' products; float32 on a CPU runs the packed-weight layer path, and
/// bfloat16 on a CPU the same path with bf16 products (float32 weights and activations between).
pub fn parse_numerics(name: Option<&str>, device: &Device) -> Result<(DType, Option<Precision>)> {
    let int8 = matches!(name.map(|n| n.trim().to_ascii_lowercase()).as_deref(), Some("int8" | "qint8"));
    if int8 {
        if !device.is_cpu() {
            return Err(Error::Argument("dtype int8 runs on the CPU only; use bfloat16 on a GPU".into()));
        }
        return Ok((DType::F32, Some(Precision::Int8)));
    }
    let dtype = parse_dtype(name, device)?;
    if device.is_cpu() && dtype == DType::BF16 {
        // float32 weights, bf16 products on the CPU layer path (fp32 where a layer lacks it).
        return Ok((DType::F32, Some(Precision::Bf16)));
    }
    let precision = (device.is_cpu() && dtype == DType::F32).then_some(Precision::Float32);
    Ok((dtype, precision))
}

pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "float32",
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(parse_device("tpu").is_err());
        assert_eq!(parse_dtype(Some("bf16"), &Device::Cpu).unwrap(), DType::BF16);
        assert_eq!(parse_dtype(None, &Device::Cpu).unwrap(), DType::F32);
        assert!(parse_dtype(Some("int8"), &Device::Cpu).is_err());
        assert_eq!(parse_numerics(Some("int8"), &Device::Cpu).unwrap(), (DType::F32, Some(Precision::Int8)));
        assert_eq!(parse_numerics(None, &Device::Cpu).unwrap(), (DType::F32, Some(Precision::Float32)));
        assert_eq!(parse_numerics(Some("bf16"), &Device::Cpu).unwrap(), (DType::F32, Some(Precision::Bf16)));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_says_so() {
        let message = parse_device("cuda:0").unwrap_err().to_string();
        assert!(message.contains("no CUDA support"), "{message}");
    }
}
