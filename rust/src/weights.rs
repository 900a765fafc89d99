//! Reading tensors from a `.safetensors` file with shape checks and errors that name the file.
//!
//! Checkpoints name the same tensor differently (`bert.encoder...` in a classifier,
//! `encoder...` in a bare `BertModel`, `model.layers...` in ModernBERT), so callers look tensors up
//! under a prefix found once by `find_prefix`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

pub struct Weights {
    path: PathBuf,
    tensors: MmapedSafetensors,
    names: HashSet<String>,
    prefix: String,
    dtype: DType,
    device: Device,
}

impl Weights {
    /// Open `path` for tensors of `dtype` on `device` (converted on load).
    pub fn open(path: &Path, dtype: DType, device: &Device) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::load(path, "file not found (expected safetensors weights)"));
        }
        // SAFETY: the file is mapped read-only; like every safetensors reader we assume it is not
        // truncated or rewritten while the model is loaded.
        let tensors = unsafe { MmapedSafetensors::new(path) }
            .map_err(|e| Error::load(path, format!("not a readable safetensors file ({e})")))?;
        let names = tensors.tensors().into_iter().map(|(name, _)| name).collect();
        Ok(Weights {
            path: path.to_path_buf(),
            tensors,
            names,
            prefix: String::new(),
            dtype,
            device: device.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every tensor name in the file, as stored (prefix included).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// The first of `prefixes` under which `probe` exists; it becomes this store's prefix.
    pub fn find_prefix(mut self, probe: &str, prefixes: &[&str]) -> Result<Self> {
        let found = prefixes.iter().find(|p| self.names.contains(&format!("{p}{probe}")));
        match found {
            Some(prefix) => {
                self.prefix = (*prefix).to_string();
                Ok(self)
            }
            None => {
                let tried: Vec<String> = prefixes.iter().map(|p| format!("{p}{probe}")).collect();
                Err(Error::load(&self.path, format!("no tensor named any of {tried:?}")))
            }
        }
    }

    /// Whether `name` exists under the encoder prefix (`prefixed`) or at the file's root.
    pub fn contains(&self, name: &str, prefixed: bool) -> bool {
        self.names.contains(&self.full_name(name, prefixed))
    }

    fn full_name(&self, name: &str, prefixed: bool) -> String {
        if prefixed {
            format!("{}{name}", self.prefix)
        } else {
            name.to_string()
        }
    }

    /// A tensor under the encoder prefix, checked against `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.load(&self.full_name(name, true), Some(shape))
    }

    /// A tensor named from the file's root (heads live outside the encoder's prefix).
    pub fn get_root(&self, name: &str, shape: Option<&[usize]>) -> Result<Tensor> {
        self.load(name, shape)
    }

    fn load(&self, full_name: &str, shape: Option<&[usize]>) -> Result<Tensor> {
        if !self.names.contains(full_name) {
            return Err(Error::load(&self.path, format!("missing tensor {full_name:?}")));
        }
        let tensor = self
            .tensors
            .load(full_name, &Device::Cpu)
            .map_err(|e| Error::load(&self.path, format!("cannot read tensor {full_name:?}: {e}")))?;
        if let Some(expected) = shape {
            if tensor.dims() != expected {
                return Err(Error::load(
                    &self.path,
                    format!(
                        "tensor {full_name:?} has shape {:?}, expected {expected:?} from config.json",
                        tensor.dims()
                    ),
                ));
            }
        }
        // Move first, then convert: a GPU casts faster than the CPU.
        Ok(tensor.to_device(&self.device)?.to_dtype(self.dtype)?)
    }
}
