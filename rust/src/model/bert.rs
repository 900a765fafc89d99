//! BERT (covers MiniLM, BERT-base, bge/e5-style encoders): post-norm transformer with absolute
//! position embeddings. Q, K and V are fused into one matmul at load time.

use candle_core::{DType, Module, Tensor};
use candle_nn::Embedding;

use crate::cpu::{CpuLayer, DenseWeights, LayerWeights, Precision};
use crate::model::dense::Dense;

use crate::error::Result;
use crate::model::config::EncoderConfig;
use crate::model::layers::{layer_norm, linear, padding_bias, self_attention, Activation, Norm};
use crate::weights::Weights;

/// One transformer layer; a branch (branch.rs) holds its own copies of the top ones. On the CPU
/// in float32 or int8 it is the packed-weight path of `crate::cpu`, elsewhere candle's ops.
// A model holds at most a few dozen layers, in a Vec: the candle variant's size (CUDA plans with
// the `cuda` feature) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum BertLayer {
    Candle(CandleLayer),
    Cpu(Box<CpuLayer>),
}

pub(crate) struct CandleLayer {
    qkv: Dense,
    attention_output: Dense,
    attention_norm: Norm,
    intermediate: Dense,
    output: Dense,
    output_norm: Norm,
}

pub struct Bert {
    word_embeddings: Embedding,
    position_embeddings: Tensor,
    token_type_embedding: Tensor,
    embeddings_norm: Norm,
    layers: Vec<BertLayer>,
    num_heads: usize,
    activation: Activation,
    /// (3, hidden): the embedding norm's gamma and beta and the token-type row, for the fused
    /// CUDA embedding kernel.
    #[cfg(feature = "cuda")]
    embedding_params: Option<Tensor>,
}

/// The tensors `BertLayer::load` reads for layer `index`, under the encoder's names.
pub(crate) fn layer_tensor_names(index: usize) -> Vec<String> {
    let parts = [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "attention.output.LayerNorm",
        "intermediate.dense",
        "output.dense",
        "output.LayerNorm",
    ];
    parts
        .iter()
        .flat_map(|part| ["weight", "bias"].map(|kind| format!("encoder.layer.{index}.{part}.{kind}")))
        .collect()
}

/// Layers `range` (indices as named in `weights`) of a BERT encoder shaped by `config`.
/// `precision`: the CPU path's, or None for candle's ops (GPUs, half precision).
pub(crate) fn load_layers(
    config: &EncoderConfig,
    weights: &Weights,
    range: std::ops::Range<usize>,
    precision: Option<Precision>,
) -> Result<Vec<BertLayer>> {
    range
        .map(|index| {
            let layer = CandleLayer::load(config, weights, index)?;
            match precision {
                Some(precision) if weights.device().is_cpu() && weights.dtype() == DType::F32 => {
                    match CpuLayer::new(layer.cpu_weights(config)?, precision) {
                        Some(cpu) => Ok(BertLayer::Cpu(Box::new(cpu))),
                        None if precision != Precision::Int8 => Ok(BertLayer::Candle(layer)),
                        None => Err(crate::error::Error::Argument(format!(
                            "int8 needs the exact GELU; this model's activation is {:?}",
                            config.hidden_act
                        ))),
                    }
                }
                _ => Ok(BertLayer::Candle(layer)),
            }
        })
        .collect()
}

fn host(tensor: &Tensor) -> Result<Vec<f32>> {
    Ok(tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

fn dense_weights(dense: &Dense) -> Result<DenseWeights> {
    let (out_dim, in_dim) = dense.weight().dims2()?;
    let bias = match dense.bias() {
        Some(bias) => host(bias)?,
        None => vec![0.0; out_dim],
    };
    Ok(DenseWeights { weight: host(dense.weight())?, bias, out_dim, in_dim })
}

impl CandleLayer {
    /// The layer's tensors on the host, for the CPU path to pack.
    fn cpu_weights(&self, config: &EncoderConfig) -> Result<LayerWeights> {
        let norm = |norm: &Norm| -> Result<(Vec<f32>, Vec<f32>)> {
            let (gamma, beta) = norm.parameters();
            let gamma = host(gamma)?;
            let beta = match beta {
                Some(beta) => host(beta)?,
                None => vec![0.0; gamma.len()],
            };
            Ok((gamma, beta))
        };
        Ok(LayerWeights {
            qkv: dense_weights(&self.qkv)?,
            attention_output: dense_weights(&self.attention_output)?,
            attention_norm: norm(&self.attention_norm)?,
            intermediate: dense_weights(&self.intermediate)?,
            output: dense_weights(&self.output)?,
            output_norm: norm(&self.output_norm)?,
            eps: config.norm_eps as f32,
            heads: config.num_heads,
            gelu: config.hidden_act == Activation::Gelu,
        })
    }

    fn load(config: &EncoderConfig, weights: &Weights, index: usize) -> Result<Self> {
        let h = config.hidden_size;
        let name = |suffix: &str| format!("encoder.layer.{index}.{suffix}");
        let part = |which: &str| linear(weights, &name(&format!("attention.self.{which}")), h, h, true);
        let (query, key, value) = (part("query")?, part("key")?, part("value")?);
        let weight = Tensor::cat(&[query.weight(), key.weight(), value.weight()], 0)?;
        let bias = match (query.bias(), key.bias(), value.bias()) {
            (Some(q), Some(k), Some(v)) => Some(Tensor::cat(&[q, k, v], 0)?),
            _ => None,
        };
        Ok(CandleLayer {
            qkv: Dense::new(weight, bias)?,
            attention_output: linear(weights, &name("attention.output.dense"), h, h, true)?,
            attention_norm: layer_norm(
                weights,
                &name("attention.output.LayerNorm"),
                h,
                config.norm_eps,
                true,
            )?,
            intermediate: linear(weights, &name("intermediate.dense"), h, config.intermediate_size, true)?
                .with_activation(config.hidden_act),
            output: linear(weights, &name("output.dense"), config.intermediate_size, h, true)?,
            output_norm: layer_norm(weights, &name("output.LayerNorm"), h, config.norm_eps, true)?,
        })
    }

    fn forward(&self, x: &Tensor, bias: &Tensor, num_heads: usize, activation: Activation) -> Result<Tensor> {
        let context = self_attention(&self.qkv.forward(x)?, bias, num_heads)?;
        let x = self.attention_norm.add_forward(self.attention_output.forward(&context)?, x)?;
        let inner = self.intermediate.forward_activated(&x, activation)?;
        self.output_norm.add_forward(self.output.forward(&inner)?, &x)
    }
}

impl Bert {
    pub fn load(config: &EncoderConfig, weights: &Weights, precision: Option<Precision>) -> Result<Self> {
        let h = config.hidden_size;
        let word = weights.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
        let layers = load_layers(config, weights, 0..config.num_layers, precision)?;
        let token_types =
            weights.get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, h])?;
        let embeddings_norm = layer_norm(weights, "embeddings.LayerNorm", h, config.norm_eps, true)?;
        // Every text is a single segment: token type 0, added as one row.
        let token_type_embedding = token_types.narrow(0, 0, 1)?;
        #[cfg(feature = "cuda")]
        let embedding_params = match embeddings_norm.packed() {
            Some(packed) => Some(Tensor::cat(&[packed, &token_type_embedding], 0)?),
            None => None,
        };
        Ok(Bert {
            word_embeddings: Embedding::new(word, h),
            position_embeddings: weights
                .get("embeddings.position_embeddings.weight", &[config.max_positions, h])?,
            token_type_embedding,
            embeddings_norm,
            layers,
            num_heads: config.num_heads,
            activation: config.hidden_act,
            #[cfg(feature = "cuda")]
            embedding_params,
        })
    }

    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (x, bias) = self.start(ids, mask)?;
        self.run_layers(&self.layers, &x, &bias)
    }

    /// The embeddings output (the input of layer 0) and the attention bias every layer reads.
    pub(crate) fn start(&self, ids: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = self.embed(ids)?;
        let bias = padding_bias(mask, x.dtype())?;
        Ok((x, bias))
    }

    /// Run `layers` (this encoder's own or a branch's) over `x`, with this encoder's heads and
    /// activation.
    pub(crate) fn run_layers(&self, layers: &[BertLayer], x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let cpu: Vec<&CpuLayer> = layers
            .iter()
            .filter_map(|layer| match layer {
                BertLayer::Cpu(cpu) => Some(&**cpu),
                BertLayer::Candle(_) => None,
            })
            .collect();
        if !cpu.is_empty() && cpu.len() == layers.len() {
            let (batch, seq, hidden) = x.dims3()?;
            let mut data = host(x)?;
            let key_bias = host(bias)?;
            crate::cpu::install(|| crate::cpu::run_layers(&cpu, &mut data, &key_bias, batch, seq));
            return Ok(Tensor::from_vec(data, (batch, seq, hidden), x.device())?);
        }
        let mut x = x.clone();
        for layer in layers {
            x = match layer {
                BertLayer::Candle(layer) => layer.forward(&x, bias, self.num_heads, self.activation)?,
                BertLayer::Cpu(_) => {
                    return Err(crate::error::Error::Inference("CPU and candle layers mixed".into()))
                }
            };
        }
        Ok(x)
    }

    /// The encoder's own layers.
    pub(crate) fn layers(&self) -> &[BertLayer] {
        &self.layers
    }

    /// LayerNorm(word + position + token type embeddings).
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let Some(params) = &self.embedding_params {
            let (word, position) = (self.word_embeddings.embeddings(), &self.position_embeddings);
            return crate::model::cuda_ops::embed_layer_norm(
                ids,
                word,
                position,
                params,
                self.embeddings_norm.eps(),
            );
        }
        let (_, seq) = ids.dims2()?;
        let embeddings = self
            .word_embeddings
            .forward(ids)?
            .broadcast_add(&self.position_embeddings.narrow(0, 0, seq)?)?
            .broadcast_add(&self.token_type_embedding)?;
        self.embeddings_norm.forward(&embeddings)
    }
}
