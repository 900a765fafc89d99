//! Heads read the encoder's hidden states: pooled embeddings, sequence and token classifiers.
//!
//! A head is described by a `HeadSpec` (JSON from Python): where its weights live (the model's
//! own file, as in `BertForSequenceClassification`, or a separate head file trained by vsr) and
//! how to pool. Shapes are checked at load so a wrong head file fails before serving.

use std::path::{Path, PathBuf};

use candle_core::{DType, Module, Tensor};
use candle_nn::{LayerNorm, Linear};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::config::{Architecture, EncoderConfig};
use crate::model::layers::Activation;
use crate::pooling::{l2_normalize, Pooling};
use crate::weights::Weights;

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    Embedding,
    Sequence,
    Token,
}

impl HeadKind {
    pub fn name(self) -> &'static str {
        match self {
            HeadKind::Embedding => "embedding",
            HeadKind::Sequence => "sequence",
            HeadKind::Token => "token",
        }
    }
}

fn default_pooling() -> String {
    "mean".into()
}
fn default_prefix() -> String {
    "classifier".into()
}
fn default_activation() -> String {
    "softmax".into()
}
fn default_hidden_activation() -> String {
    "relu".into()
}

/// What Python sends for each head (see `vsr/model_files.py::HeadSpec`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSpec {
    pub kind: HeadKind,
    #[serde(default = "default_pooling")]
    pub pooling: String,
    #[serde(default)]
    pub normalize: bool,
    #[serde(default)]
    pub transform: Option<String>,
    #[serde(default)]
    pub weights: Option<PathBuf>,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default = "default_activation")]
    pub activation: String,
    #[serde(default = "default_hidden_activation")]
    pub hidden_activation: String,
    /// The branch (model/branch.rs) whose last layer this head reads; None: the encoder's.
    #[serde(default)]
    pub branch: Option<String>,
}

/// A dense transform before the classifier layers, stored in the model's own file.
pub enum Transform {
    /// BERT's pooler: tanh(dense(h_cls)).
    BertPooler(Linear),
    /// ModernBERT's prediction head: norm(act(dense(h))).
    ModernBertHead { dense: Linear, activation: Activation, norm: LayerNorm },
}

impl Transform {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Transform::BertPooler(dense) => dense.forward(x)?.tanh()?,
            Transform::ModernBertHead { dense, activation, norm } => {
                norm.forward(&activation.apply(&dense.forward(x)?)?)?
            }
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Softmax,
    Sigmoid,
    Identity,
}

/// Linear layers with an activation between them, computed in float32 (heads are tiny).
pub struct Layers {
    layers: Vec<Linear>,
    hidden_activation: Activation,
    output: Output,
}

impl Layers {
    fn out_dim(&self) -> usize {
        self.layers.last().map(|l| l.weight().dim(0).unwrap_or(0)).unwrap_or(0)
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.to_dtype(DType::F32)?;
        // Pooled rows on the CPU: a plain loop. candle's CPU matmul asks how many cores there
        // are on every call, reading /proc/cpuinfo, ~0.05 ms per head on a short request.
        let host = x.device().is_cpu() && x.rank() == 2;
        for (index, layer) in self.layers.iter().enumerate() {
            if index > 0 {
                x = self.hidden_activation.apply(&x)?;
            }
            x = if host { host_linear(layer, &x)? } else { layer.forward(&x)? };
        }
        Ok(match self.output {
            Output::Softmax => candle_nn::ops::softmax_last_dim(&x)?,
            Output::Sigmoid => candle_nn::ops::sigmoid(&x)?,
            Output::Identity => x,
        })
    }
}

/// `x · Wᵀ + b` for (rows, in) float32 rows on the CPU.
fn host_linear(layer: &Linear, x: &Tensor) -> Result<Tensor> {
    let (rows, in_dim) = x.dims2()?;
    let (out_dim, _) = layer.weight().dims2()?;
    let input = x.flatten_all()?.to_vec1::<f32>()?;
    let weight = layer.weight().flatten_all()?.to_vec1::<f32>()?;
    let bias = match layer.bias() {
        Some(bias) => bias.to_vec1::<f32>()?,
        None => vec![0.0; out_dim],
    };
    let mut out = Vec::with_capacity(rows * out_dim);
    for row in input.chunks_exact(in_dim) {
        for (column, &b) in weight.chunks_exact(in_dim).zip(&bias) {
            out.push(dot(row, column) + b);
        }
    }
    Ok(Tensor::from_vec(out, (rows, out_dim), x.device())?)
}

/// A dot product in 16 partial sums (vectorised; the order differs from a gemm's by rounding).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut lanes = [0.0f32; LANES];
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = chunks_a.remainder().iter().zip(chunks_b.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in chunks_a.zip(chunks_b) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

pub enum Head {
    Embedding { pooling: Pooling, normalize: bool },
    Sequence { pooling: Pooling, normalize: bool, transform: Option<Transform>, layers: Layers },
    Token { transform: Option<Transform>, layers: Layers },
}

/// What a head produced for a batch.
pub enum HeadBatch {
    /// (batch, columns) float32: embeddings or probabilities.
    Rows(Tensor),
    /// (batch, seq, labels) float32 per-token probabilities.
    Tokens(Tensor),
}

impl Head {
    pub fn load(
        spec: &HeadSpec,
        config: &EncoderConfig,
        model: &Weights,
        config_path: &Path,
    ) -> Result<Self> {
        let pooling = Pooling::parse(&spec.pooling)?;
        if spec.kind == HeadKind::Embedding {
            return Ok(Head::Embedding { pooling, normalize: spec.normalize });
        }
        let transform = match spec.transform.as_deref() {
            None => None,
            Some(name) => Some(load_transform(name, config, model, config_path)?),
        };
        let layers = match &spec.weights {
            None => load_layers(model, &spec.prefix, config.hidden_size, spec)?,
            Some(path) => {
                // Head files are small; keep them in float32 whatever the encoder's dtype.
                let file = Weights::open(path, DType::F32, model.device())?;
                load_layers(&file, &spec.prefix, config.hidden_size, spec)?
            }
        };
        Ok(match spec.kind {
            HeadKind::Sequence => Head::Sequence { pooling, normalize: spec.normalize, transform, layers },
            _ => Head::Token { transform, layers },
        })
    }

    pub fn kind(&self) -> HeadKind {
        match self {
            Head::Embedding { .. } => HeadKind::Embedding,
            Head::Sequence { .. } => HeadKind::Sequence,
            Head::Token { .. } => HeadKind::Token,
        }
    }

    /// Number of output columns (embedding size or labels).
    pub fn width(&self, hidden_size: usize) -> usize {
        match self {
            Head::Embedding { .. } => hidden_size,
            Head::Sequence { layers, .. } | Head::Token { layers, .. } => layers.out_dim(),
        }
    }

    /// This head's output for one pass; `views` shares pooled vectors between the heads of a pass
    /// (the default bundle's three heads all read the same normalised mean).
    pub fn forward(&self, hidden: &Tensor, mask: &Tensor, views: &mut PooledViews) -> Result<HeadBatch> {
        Ok(match self {
            Head::Embedding { pooling, normalize } => {
                HeadBatch::Rows(views.get(*pooling, *normalize, hidden, mask)?)
            }
            Head::Sequence { pooling, normalize, transform, layers } => {
                let mut x = views.get(*pooling, *normalize, hidden, mask)?;
                if let Some(transform) = transform {
                    // The transform runs in the encoder's dtype, as its weights are stored.
                    x = transform.forward(&x.to_dtype(hidden.dtype())?)?;
                }
                HeadBatch::Rows(layers.forward(&x)?)
            }
            Head::Token { transform, layers } => {
                let x = match transform {
                    Some(transform) => transform.forward(hidden)?,
                    None => hidden.clone(),
                };
                HeadBatch::Tokens(layers.forward(&x)?)
            }
        })
    }
}

/// Pooled (and optionally L2-normalised) vectors of one pass, computed once per kind.
#[derive(Default)]
pub struct PooledViews {
    views: Vec<((Pooling, bool), Tensor)>,
}

impl PooledViews {
    fn get(&mut self, pooling: Pooling, normalize: bool, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        if let Some((_, view)) = self.views.iter().find(|(key, _)| *key == (pooling, normalize)) {
            return Ok(view.clone());
        }
        let pooled = pooling.pool(hidden, mask)?;
        let view = if normalize { l2_normalize(&pooled)? } else { pooled };
        self.views.push(((pooling, normalize), view.clone()));
        Ok(view)
    }
}

fn load_transform(
    name: &str,
    config: &EncoderConfig,
    model: &Weights,
    config_path: &Path,
) -> Result<Transform> {
    let h = config.hidden_size;
    match (name, config.architecture) {
        ("bert_pooler", Architecture::Bert) => {
            let weight = model.get("pooler.dense.weight", &[h, h])?;
            let bias = model.get("pooler.dense.bias", &[h])?;
            Ok(Transform::BertPooler(Linear::new(weight, Some(bias))))
        }
        ("modernbert_head", Architecture::ModernBert) => {
            let weight = model.get_root("head.dense.weight", Some(&[h, h]))?;
            let bias = if config.classifier_bias {
                Some(model.get_root("head.dense.bias", Some(&[h]))?)
            } else {
                None
            };
            let norm_weight = model.get_root("head.norm.weight", Some(&[h]))?;
            let norm_bias = if config.norm_bias {
                model.get_root("head.norm.bias", Some(&[h]))?
            } else {
                Tensor::zeros(h, model.dtype(), model.device())?
            };
            Ok(Transform::ModernBertHead {
                dense: Linear::new(weight, bias),
                activation: config.classifier_activation,
                norm: LayerNorm::new(norm_weight, norm_bias, config.norm_eps),
            })
        }
        (name, architecture) => Err(Error::unsupported(
            config_path,
            format!("head transform {name:?} does not apply to a {} encoder", architecture.name()),
        )),
    }
}

/// `prefix.weight`/`prefix.bias` (one layer) or `prefix.{i}.weight`/`prefix.{i}.bias` (an MLP).
fn load_layers(file: &Weights, prefix: &str, hidden_size: usize, spec: &HeadSpec) -> Result<Layers> {
    let names: Vec<String> = if file.contains(&format!("{prefix}.weight"), false) {
        vec![prefix.to_string()]
    } else {
        (0..)
            .map(|i| format!("{prefix}.{i}"))
            .take_while(|n| file.contains(&format!("{n}.weight"), false))
            .collect()
    };
    if names.is_empty() {
        return Err(Error::load(
            file.path(),
            format!("no head weights {prefix}.weight or {prefix}.0.weight"),
        ));
    }
    let mut layers = Vec::with_capacity(names.len());
    let mut in_dim = hidden_size;
    for name in names {
        let weight = file.get_root(&format!("{name}.weight"), None)?.to_dtype(DType::F32)?;
        let (out_dim, got_in) =
            weight.dims2().map_err(|_| Error::load(file.path(), format!("{name}.weight must be 2-D")))?;
        if got_in != in_dim {
            return Err(Error::load(
                file.path(),
                format!("{name}.weight has shape [{out_dim}, {got_in}], expected [_, {in_dim}]"),
            ));
        }
        let bias_name = format!("{name}.bias");
        let bias = if file.contains(&bias_name, false) {
            Some(file.get_root(&bias_name, Some(&[out_dim]))?.to_dtype(DType::F32)?)
        } else {
            None
        };
        layers.push(Linear::new(weight, bias));
        in_dim = out_dim;
    }
    let parse = |name: &str| {
        Activation::parse(name).ok_or_else(|| {
            Error::Argument(format!("unknown activation {name:?} ({})", Activation::SUPPORTED))
        })
    };
    let output = match spec.activation.as_str() {
        "softmax" => Output::Softmax,
        "sigmoid" => Output::Sigmoid,
        "none" | "identity" => Output::Identity,
        other => {
            return Err(Error::Argument(format!(
                "unknown output activation {other:?}: softmax, sigmoid or none"
            )))
        }
    };
    Ok(Layers { layers, hidden_activation: parse(&spec.hidden_activation)?, output })
}
