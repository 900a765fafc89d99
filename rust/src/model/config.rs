//! config.json -> the few numbers an encoder needs, with errors that name the file and field.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::layers::Activation;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Bert,
    ModernBert,
}

impl Architecture {
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Bert => "bert",
            Architecture::ModernBert => "modernbert",
        }
    }
}

/// ModernBERT's alternating attention: which layers are global, and the local window.
#[derive(Clone, Debug)]
pub struct LocalAttention {
    pub global_layers: Vec<bool>,
    pub window: usize,
    pub global_rope_theta: f64,
    pub local_rope_theta: f64,
}

#[derive(Clone, Debug)]
pub struct EncoderConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub max_positions: usize,
    pub type_vocab_size: usize,
    pub norm_eps: f64,
    pub hidden_act: Activation,
    pub pad_token_id: u32,
    /// ModernBERT only: bias terms, head activation, alternating attention.
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub norm_bias: bool,
    pub classifier_bias: bool,
    pub classifier_activation: Activation,
    pub local: Option<LocalAttention>,
}

struct Fields<'a> {
    path: &'a Path,
    value: &'a Value,
}

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    fn usize(&self, key: &str, default: Option<usize>) -> Result<usize> {
        match self.get(key) {
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| Error::load(self.path, format!("{key} must be a non-negative integer"))),
            None => default.ok_or_else(|| Error::load(self.path, format!("missing field {key}"))),
        }
    }

    fn f64(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            Some(v) => v.as_f64().ok_or_else(|| Error::load(self.path, format!("{key} must be a number"))),
            None => Ok(default),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            Some(v) => {
                v.as_bool().ok_or_else(|| Error::load(self.path, format!("{key} must be true or false")))
            }
            None => Ok(default),
        }
    }

    fn str(&self, key: &str, default: &str) -> Result<String> {
        match self.get(key) {
            Some(v) => v
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::load(self.path, format!("{key} must be a string"))),
            None => Ok(default.to_string()),
        }
    }

    fn activation(&self, key: &str, default: &str) -> Result<Activation> {
        let name = self.str(key, default)?;
        Activation::parse(&name).ok_or_else(|| {
            Error::unsupported(
                self.path,
                format!("{key} {name:?} is not supported ({})", Activation::SUPPORTED),
            )
        })
    }
}

impl EncoderConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::load(path, format!("cannot read config.json ({e})")))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| Error::load(path, format!("not valid JSON ({e})")))?;
        Self::from_value(path, &value)
    }

    pub fn from_value(path: &Path, value: &Value) -> Result<Self> {
        let f = Fields { path, value };
        let model_type = f.str("model_type", "")?;
        let architecture = match model_type.as_str() {
            "bert" => Architecture::Bert,
            "modernbert" => Architecture::ModernBert,
            other => {
                return Err(Error::unsupported(
                    path,
                    format!("model_type {other:?} is not supported (supported: bert, modernbert)"),
                ))
            }
        };
        let hidden_size = f.usize("hidden_size", None)?;
        let num_heads = f.usize("num_attention_heads", None)?;
        if num_heads == 0 || hidden_size % num_heads != 0 {
            return Err(Error::load(
                path,
                format!("hidden_size {hidden_size} is not divisible by num_attention_heads {num_heads}"),
            ));
        }
        let num_layers = f.usize("num_hidden_layers", None)?;
        let bert = architecture == Architecture::Bert;
        if bert {
            let position = f.str("position_embedding_type", "absolute")?;
            if position != "absolute" {
                return Err(Error::unsupported(
                    path,
                    format!("position_embedding_type {position:?} is not supported (only absolute)"),
                ));
            }
        }
        let local = if bert { None } else { Some(local_attention(&f, num_layers)?) };
        Ok(EncoderConfig {
            architecture,
            vocab_size: f.usize("vocab_size", None)?,
            hidden_size,
            num_layers,
            num_heads,
            intermediate_size: f.usize("intermediate_size", None)?,
            max_positions: f.usize("max_position_embeddings", Some(512))?,
            type_vocab_size: f.usize("type_vocab_size", Some(2))?,
            norm_eps: if bert { f.f64("layer_norm_eps", 1e-12)? } else { f.f64("norm_eps", 1e-5)? },
            hidden_act: f.activation(if bert { "hidden_act" } else { "hidden_activation" }, "gelu")?,
            pad_token_id: f.usize("pad_token_id", Some(0))? as u32,
            attention_bias: f.bool("attention_bias", false)?,
            mlp_bias: f.bool("mlp_bias", false)?,
            norm_bias: f.bool("norm_bias", false)?,
            classifier_bias: f.bool("classifier_bias", false)?,
            classifier_activation: f.activation("classifier_activation", "gelu")?,
            local,
        })
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }
}

/// Which ModernBERT layers attend globally. transformers >= 5 writes `layer_types` and
/// `rope_parameters`; earlier versions write `global_attn_every_n_layers` and two thetas.
fn local_attention(f: &Fields<'_>, num_layers: usize) -> Result<LocalAttention> {
    let global_layers = match f.get("layer_types").and_then(Value::as_array) {
        Some(types) => {
            if types.len() != num_layers {
                return Err(Error::load(
                    f.path,
                    format!("layer_types has {} entries, expected {num_layers}", types.len()),
                ));
            }
            types.iter().map(|t| t.as_str() != Some("sliding_attention")).collect()
        }
        None => {
            let every = f.usize("global_attn_every_n_layers", Some(3))?.max(1);
            (0..num_layers).map(|layer| layer % every == 0).collect()
        }
    };
    let theta = |kind: &str, legacy: &str, default: f64| -> Result<f64> {
        let nested = f
            .get("rope_parameters")
            .and_then(|p| p.get(kind))
            .and_then(|p| p.get("rope_theta"))
            .and_then(Value::as_f64);
        match nested {
            Some(value) => Ok(value),
            None => f.f64(legacy, default),
        }
    };
    Ok(LocalAttention {
        global_layers,
        window: f.usize("local_attention", Some(128))?,
        global_rope_theta: theta("full_attention", "global_rope_theta", 160_000.0)?,
        local_rope_theta: theta("sliding_attention", "local_rope_theta", 10_000.0)?,
    })
}
