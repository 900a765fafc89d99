//! ModernBERT: pre-norm transformer with rotary position embeddings, a gated GELU MLP and
//! alternating global / sliding-window attention, without bias terms by default.
//!
//! On CUDA the attention and the gated MLP take vsr's kernels (cuda_ops/modernbert.rs: the window
//! is applied inside the softmax, no bias tensor is built); elsewhere, or with
//! `VSR_MODERNBERT_GENERIC=1`, candle's generic ops.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Embedding;

use crate::model::dense::Dense;

use crate::error::{Error, Result};
use crate::model::config::EncoderConfig;
use crate::model::layers::{
    attention, layer_norm, linear, padding_bias, split_qkv, window_bias, Activation, Norm,
};
use crate::weights::Weights;

/// cos/sin tables (max_positions, head_dim / 2) for one rope theta.
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(theta: f64, head_dim: usize, max_positions: usize, dtype: DType, device: &Device) -> Result<Self> {
        let half = head_dim / 2;
        let inverse: Vec<f32> =
            (0..half).map(|i| (1.0 / theta.powf(2.0 * i as f64 / head_dim as f64)) as f32).collect();
        let inverse = Tensor::from_vec(inverse, (1, half), device)?;
        let positions = Tensor::arange(0u32, max_positions as u32, device)?
            .to_dtype(DType::F32)?
            .reshape((max_positions, 1))?;
        let angles = positions.broadcast_mul(&inverse)?;
        Ok(Rotary { cos: angles.cos()?.to_dtype(dtype)?, sin: angles.sin()?.to_dtype(dtype)? })
    }

    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let seq = x.dim(2)?;
        let cos = self.cos.narrow(0, 0, seq)?;
        let sin = self.sin.narrow(0, 0, seq)?;
        Ok(candle_nn::rotary_emb::rope(x, &cos, &sin)?)
    }
}

struct ModernBertLayer {
    /// Layer 0 has no attention norm: the embedding norm already normalised its input.
    attention_norm: Option<Norm>,
    qkv: Dense,
    attention_output: Dense,
    mlp_norm: Norm,
    mlp_in: Dense,
    mlp_out: Dense,
    global: bool,
}

pub struct ModernBert {
    embeddings: Embedding,
    embeddings_norm: Norm,
    layers: Vec<ModernBertLayer>,
    final_norm: Norm,
    global_rotary: Rotary,
    local_rotary: Rotary,
    half_window: usize,
    num_heads: usize,
    max_positions: usize,
    activation: Activation,
    /// Sliding-window biases by sequence length, built once: a pass then uploads nothing from the
    /// host, so it can be recorded as a CUDA graph (cuda_graphs.rs).
    window_biases: std::sync::Mutex<std::collections::HashMap<usize, Tensor>>,
}

/// What a pass's layers mask attention with.
struct Masks {
    /// The (batch, 1, 1, seq) padding bias: all the global layers need.
    padding: Tensor,
    /// The generic path's bias for the local layers: the padding bias plus the (seq, seq) window
    /// bias. None when the pass takes vsr's CUDA kernels, whose softmax applies the window itself.
    local: Option<Tensor>,
}

impl ModernBertLayer {
    fn forward(&self, x: &Tensor, model: &ModernBert, masks: &Masks) -> Result<Tensor> {
        let normed = match &self.attention_norm {
            Some(norm) => norm.forward(x)?,
            None => x.clone(),
        };
        let qkv = self.qkv.forward(&normed)?;
        let rotary = if self.global { &model.global_rotary } else { &model.local_rotary };
        #[cfg(feature = "cuda")]
        if masks.local.is_none() {
            use crate::model::cuda_ops;
            let (q, k, v) = cuda_ops::split_heads(&qkv, model.num_heads)?;
            let window = (!self.global).then_some(model.half_window);
            let context = cuda_ops::windowed_attention(
                &rotary.apply(&q)?,
                &rotary.apply(&k)?,
                &v,
                &masks.padding,
                window,
            )?;
            let tanh = match model.activation {
                Activation::Gelu => Some(false),
                Activation::GeluTanh => Some(true),
                _ => None,
            };
            return self.finish(x, &context, |projected| match tanh {
                Some(tanh) => cuda_ops::gated_gelu(projected, tanh),
                None => model.gate(projected),
            });
        }
        let (q, k, v) = split_qkv(&qkv, model.num_heads)?;
        let (q, k) = (rotary.apply(&q)?, rotary.apply(&k)?);
        let bias = match (&masks.local, self.global) {
            (Some(local), false) => local,
            _ => &masks.padding,
        };
        self.finish(x, &attention(&q, &k, &v, bias)?, |projected| model.gate(projected))
    }

    /// The attention output and the MLP, each with its residual; `gate` turns Wi's output into the
    /// MLP's hidden activations.
    fn finish(
        &self,
        x: &Tensor,
        context: &Tensor,
        gate: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let x = (x + self.attention_output.forward(context)?)?;
        let projected = self.mlp_in.forward(&self.mlp_norm.forward(&x)?)?;
        Ok((x + self.mlp_out.forward(&gate(&projected)?)?)?)
    }
}

impl ModernBert {
    pub fn load(config: &EncoderConfig, weights: &Weights) -> Result<Self> {
        let local = config
            .local
            .as_ref()
            .ok_or_else(|| Error::Argument("ModernBERT needs attention settings".into()))?;
        let h = config.hidden_size;
        let eps = config.norm_eps;
        let layers = (0..config.num_layers)
            .map(|index| {
                let name = |suffix: &str| format!("layers.{index}.{suffix}");
                Ok(ModernBertLayer {
                    attention_norm: if index == 0 && !weights.contains(&name("attn_norm.weight"), true) {
                        None
                    } else {
                        Some(layer_norm(weights, &name("attn_norm"), h, eps, config.norm_bias)?)
                    },
                    qkv: linear(weights, &name("attn.Wqkv"), h, 3 * h, config.attention_bias)?,
                    attention_output: linear(weights, &name("attn.Wo"), h, h, config.attention_bias)?,
                    mlp_norm: layer_norm(weights, &name("mlp_norm"), h, eps, config.norm_bias)?,
                    mlp_in: linear(
                        weights,
                        &name("mlp.Wi"),
                        h,
                        2 * config.intermediate_size,
                        config.mlp_bias,
                    )?,
                    mlp_out: linear(weights, &name("mlp.Wo"), config.intermediate_size, h, config.mlp_bias)?,
                    global: local.global_layers[index],
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let embeddings = weights.get("embeddings.tok_embeddings.weight", &[config.vocab_size, h])?;
        let rotary = |theta| {
            Rotary::new(theta, config.head_dim(), config.max_positions, weights.dtype(), weights.device())
        };
        Ok(ModernBert {
            embeddings: Embedding::new(embeddings, h),
            embeddings_norm: layer_norm(weights, "embeddings.norm", h, eps, config.norm_bias)?,
            layers,
            final_norm: layer_norm(weights, "final_norm", h, eps, config.norm_bias)?,
            global_rotary: rotary(local.global_rope_theta)?,
            local_rotary: rotary(local.local_rope_theta)?,
            half_window: local.window / 2,
            num_heads: config.num_heads,
            max_positions: config.max_positions,
            activation: config.hidden_act,
            window_biases: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The gated MLP on generic ops: Wi's output holds [input; gate], the MLP takes act(input) * gate.
    fn gate(&self, projected: &Tensor) -> Result<Tensor> {
        let half = projected.dim(2)? / 2;
        Ok((self.activation.apply(&projected.narrow(2, 0, half)?)? * projected.narrow(2, half, half)?)?)
    }

    /// The (seq, seq) sliding-window bias, from the cache (the generic path only).
    fn window_bias(&self, seq: usize, dtype: DType, device: &Device) -> Result<Tensor> {
        let mut cache =
            self.window_biases.lock().map_err(|_| Error::Inference("window bias lock poisoned".into()))?;
        if let Some(bias) = cache.get(&seq) {
            if bias.dtype() == dtype {
                return Ok(bias.clone());
            }
        }
        if cache.len() >= 64 {
            cache.clear();
        }
        let bias = window_bias(seq, self.half_window, dtype, device)?;
        cache.insert(seq, bias.clone());
        Ok(bias)
    }

    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, seq) = ids.dims2()?;
        if seq > self.max_positions {
            return Err(Error::Argument(format!(
                "{seq} tokens exceed max_position_embeddings {}",
                self.max_positions
            )));
        }
        let mut x = self.embeddings_norm.forward(&self.embeddings.forward(ids)?)?;
        let padding = padding_bias(mask, x.dtype())?;
        #[cfg(feature = "cuda")]
        let fused =
            crate::model::cuda_ops::supported(&x) && !crate::model::cuda_ops::modernbert_generic_forced()?;
        #[cfg(not(feature = "cuda"))]
        let fused = false;
        let local = if fused {
            None
        } else if seq > self.half_window + 1 {
            Some(padding.broadcast_add(&self.window_bias(seq, x.dtype(), x.device())?)?)
        } else {
            Some(padding.clone())
        };
        let masks = Masks { padding, local };
        for layer in &self.layers {
            x = layer.forward(&x, self, &masks)?;
        }
        self.final_norm.forward(&x)
    }
}
