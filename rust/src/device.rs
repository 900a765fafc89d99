//! Device and dtype selection: "cpu" always, "cuda" / "cuda:N" when built with the `cuda` feature.

use candle_core::{DType, Device};

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
    Device::new_cuda(ordinal).map_err(|e| Error::Device(format!("cannot open cuda:{ordinal}: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(ordinal: usize) -> Result<Device> {
    Err(Error::Device(format!(
        "cuda:{ordinal} requested, but this build of vsr has no CUDA support; \
         install the CUDA wheel (built with `make build-cuda`) or use device=\"cpu\""
    )))
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
            _ => Err(Error::Argument(format!("unknown dtype {n:?}: expected float32, float16 or bfloat16"))),
        },
    }
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
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_says_so() {
        let message = parse_device("cuda:0").unwrap_err().to_string();
        assert!(message.contains("no CUDA support"), "{message}");
    }
}
