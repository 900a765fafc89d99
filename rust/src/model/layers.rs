//! Building blocks shared by the encoders: activations, linear/norm loading, masked attention.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::LayerNorm;

use crate::model::dense::Dense;

use crate::error::Result;
use crate::weights::Weights;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// The exact erf form, what Hugging Face calls "gelu".
    Gelu,
    /// The tanh approximation ("gelu_new", "gelu_pytorch_tanh", "gelu_fast").
    GeluTanh,
    Relu,
    Silu,
    Tanh,
    Identity,
}

impl Activation {
    pub const SUPPORTED: &'static str =
        "gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, silu, swish, tanh, identity";

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            "tanh" => Activation::Tanh,
            "identity" | "linear" | "none" => Activation::Identity,
            _ => return None,
        })
    }

    /// Apply to a tensor the caller owns (the exact GELU runs in place on CUDA).
    pub fn apply_owned(self, x: Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if self == Activation::Gelu && crate::model::cuda_ops::supported(&x) {
            return crate::model::cuda_ops::gelu_erf(x);
        }
        self.apply(&x)
    }

    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::Gelu => x.gelu_erf()?,
            Activation::GeluTanh => x.gelu()?,
            Activation::Relu => x.relu()?,
            Activation::Silu => x.silu()?,
            Activation::Tanh => x.tanh()?,
            Activation::Identity => x.clone(),
        })
    }
}

/// A linear layer `name.weight` (out, in) and, if `bias`, `name.bias` (out).
pub fn linear(weights: &Weights, name: &str, in_dim: usize, out_dim: usize, bias: bool) -> Result<Dense> {
    let weight = weights.get(&format!("{name}.weight"), &[out_dim, in_dim])?;
    let bias = if bias { Some(weights.get(&format!("{name}.bias"), &[out_dim])?) } else { None };
    Dense::new(weight, bias)
}

/// A layer norm; without a stored bias we pass zeros, which keeps candle's fused kernel.
pub fn layer_norm(weights: &Weights, name: &str, size: usize, eps: f64, bias: bool) -> Result<Norm> {
    let weight = weights.get(&format!("{name}.weight"), &[size])?;
    let bias = if bias {
        weights.get(&format!("{name}.bias"), &[size])?
    } else {
        Tensor::zeros(size, weights.dtype(), weights.device())?
    };
    Norm::new(weight, bias, eps)
}

/// A layer norm that can also add a residual first. On CUDA that is one fused kernel writing in
/// place (see cuda_ops/rows.rs), with gamma and beta packed into one (2, hidden) tensor at load.
pub struct Norm {
    norm: LayerNorm,
    #[cfg(feature = "cuda")]
    packed: Option<Tensor>,
}

impl Norm {
    fn new(weight: Tensor, bias: Tensor, eps: f64) -> Result<Self> {
        #[cfg(feature = "cuda")]
        let packed = if crate::model::cuda_ops::supported(&weight)
            && weight.dim(0)? <= crate::model::cuda_ops::MAX_NORM_HIDDEN
        {
            Some(Tensor::stack(&[&weight, &bias], 0)?)
        } else {
            None
        };
        Ok(Norm {
            norm: LayerNorm::new(weight, bias, eps),
            #[cfg(feature = "cuda")]
            packed,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.norm.forward(x)?)
    }

    /// gamma and beta (None: no shift).
    pub fn parameters(&self) -> (&Tensor, Option<&Tensor>) {
        (self.norm.weight(), self.norm.bias())
    }

    #[cfg(feature = "cuda")]
    pub fn eps(&self) -> f64 {
        self.norm.eps()
    }

    /// gamma and beta as one (2, hidden) tensor, when the fused CUDA kernels serve this norm.
    #[cfg(feature = "cuda")]
    pub fn packed(&self) -> Option<&Tensor> {
        self.packed.as_ref()
    }

    /// LayerNorm(x + residual). Takes `x` by value: the fused path overwrites it.
    pub fn add_forward(&self, x: Tensor, residual: &Tensor) -> Result<Tensor> {
        #[cfg(feature = "cuda")]
        if let Some(params) = &self.packed {
            return crate::model::cuda_ops::add_layer_norm(x, residual, params, self.norm.eps());
        }
        self.forward(&(x + residual)?)
    }
}

/// The most negative value we add to masked attention scores. It must be finite: `(1 - m) * -inf`
/// is NaN where m = 1, and f32::MIN itself overflows float16.
fn mask_value(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -65_504.0,
        DType::BF16 => -3.0e38,
        _ => f32::MIN as f64,
    }
}

/// Additive attention bias (batch, 1, 1, seq): 0 for real tokens, a large negative for padding.
/// Built with a select, not a multiply, so no 0 * inf can appear in half precision.
pub fn padding_bias(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (batch, seq) = mask.dims2()?;
    #[cfg(feature = "cuda")]
    if mask.device().is_cuda()
        && mask.dtype() == DType::U32
        && matches!(dtype, DType::F32 | DType::F16 | DType::BF16)
    {
        let bias = crate::model::cuda_ops::padding_bias(mask, dtype, mask_value(dtype) as f32)?;
        return Ok(bias.reshape((batch, 1, 1, seq))?);
    }
    let zeros = Tensor::zeros((batch, seq), dtype, mask.device())?;
    let blocked = Tensor::full(mask_value(dtype) as f32, (batch, seq), mask.device())?.to_dtype(dtype)?;
    Ok(mask.where_cond(&zeros, &blocked)?.reshape((batch, 1, 1, seq))?)
}

/// A (seq, seq) bias that blocks keys farther than `half_window` from the query.
pub fn window_bias(seq: usize, half_window: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let blocked = mask_value(dtype) as f32;
    let values: Vec<f32> = (0..seq)
        .flat_map(|i| (0..seq).map(move |j| if i.abs_diff(j) <= half_window { 0.0 } else { blocked }))
        .collect();
    Ok(Tensor::from_vec(values, (seq, seq), device)?.to_dtype(dtype)?)
}

/// Split fused QKV (batch, seq, 3 * hidden) into q, k, v of shape (batch, heads, seq, head_dim).
pub fn split_qkv(qkv: &Tensor, num_heads: usize) -> Result<(Tensor, Tensor, Tensor)> {
    let (batch, seq, three_hidden) = qkv.dims3()?;
    let head_dim = three_hidden / 3 / num_heads;
    // One copy into (3, batch, heads, seq, head_dim); q, k and v are then contiguous views of it
    // (one kernel launch instead of three: at batch 1 a GPU pass is bound by launches).
    let qkv = qkv.reshape((batch, seq, 3, num_heads, head_dim))?.permute((2, 0, 3, 1, 4))?.contiguous()?;
    Ok((qkv.get(0)?, qkv.get(1)?, qkv.get(2)?))
}

/// softmax(q k^T / sqrt(d) + bias) v, returned as (batch, seq, heads * head_dim).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (batch, heads, seq, head_dim) = q.dims4()?;
    let q = (q * (1.0 / (head_dim as f64).sqrt()))?;
    let scores = q.matmul(&k.t()?)?.broadcast_add(bias)?;
    let probabilities = candle_nn::ops::softmax_last_dim(&scores)?;
    let context = probabilities.matmul(v)?;
    Ok(context.transpose(1, 2)?.reshape((batch, seq, heads * head_dim))?)
}

/// BERT self-attention from fused QKV (batch, seq, 3 * hidden) and the (batch, 1, 1, seq) padding
/// bias: returns the context (batch, seq, hidden). On CUDA, fused kernels (cuda_ops/attention.rs).
pub fn self_attention(qkv: &Tensor, bias: &Tensor, num_heads: usize) -> Result<Tensor> {
    #[cfg(feature = "cuda")]
    if crate::model::cuda_ops::supported(qkv) {
        return crate::model::cuda_ops::self_attention(qkv, &bias.flatten_from(1)?, num_heads);
    }
    let (q, k, v) = split_qkv(qkv, num_heads)?;
    attention(&q, &k, &v, bias)
}
