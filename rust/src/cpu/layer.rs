//! One BERT layer on the CPU path (post-norm: attention, add & norm, GELU MLP, add & norm) over
//! (rows, hidden) float32 buffers that live for one forward pass, not one per op.

use super::attention::{self_attention, Shape};
use super::gemm::{matmul, Activation, Packed};
use super::ops::{add_norm, gelu};
use super::pool::{for_each_part, threads, SendPtr};
use super::quant::{Bf16Weight, QuantizedWeight};
use super::{Isa, Precision};

/// A linear layer's weight (out, in) row-major and bias, as read from the checkpoint.
pub(crate) struct DenseWeights {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub out_dim: usize,
    pub in_dim: usize,
}

/// A layer norm's gamma and beta.
pub(crate) type Norm = (Vec<f32>, Vec<f32>);

/// What a layer is built from (see `model/bert.rs`).
pub(crate) struct LayerWeights {
    pub qkv: DenseWeights,
    pub attention_output: DenseWeights,
    pub attention_norm: Norm,
    pub intermediate: DenseWeights,
    pub output: DenseWeights,
    pub output_norm: Norm,
    pub eps: f32,
    pub heads: usize,
    /// The exact (erf) GELU; other activations keep candle's path.
    pub gelu: bool,
}

enum Weight {
    Float32(Packed),
    Int8(QuantizedWeight),
    Bf16(Bf16Weight),
}

struct Linear {
    weight: Weight,
    bias: Vec<f32>,
    out_dim: usize,
}

impl Linear {
    fn new(dense: DenseWeights, precision: Precision) -> Self {
        let DenseWeights { weight, bias, out_dim, in_dim } = dense;
        let weight = match precision {
            Precision::Float32 => Weight::Float32(Packed::from_rows(&weight, out_dim, in_dim, in_dim)),
            Precision::Int8 => Weight::Int8(QuantizedWeight::new(&weight, out_dim, in_dim)),
            Precision::Bf16 => Weight::Bf16(Bf16Weight::new(&weight, out_dim, in_dim)),
        };
        Linear { weight, bias, out_dim }
    }

    /// `c = act(a · Wᵀ + bias)` for `m` contiguous rows: the GELU fused into the float32
    /// product's tiles, a pass over the output for the reduced-precision ones.
    fn forward(&self, isa: Isa, a: &[f32], m: usize, activation: Activation, c: &mut [f32], threads: usize) {
        let (bias, n) = (Some(self.bias.as_slice()), self.out_dim);
        match &self.weight {
            Weight::Float32(packed) => matmul(isa, a, packed.k(), m, packed, bias, activation, c, n, threads),
            Weight::Int8(weight) => weight.matmul(a, m, &self.bias, c, threads),
            Weight::Bf16(weight) => weight.matmul(a, m, &self.bias, c, threads),
        }
        let fused = matches!(self.weight, Weight::Float32(_));
        if activation == Activation::Gelu && !fused {
            gelu(isa, &mut c[..m * n]);
        }
    }
}

/// Elements below which a residual add + layer norm runs on one thread (waking the other core
/// costs more than half of such a pass).
const PARALLEL_NORM: usize = 1 << 17;

/// `x = LayerNorm(x + added)` per row, in place (x is the residual stream: no copy back), the
/// rows split across threads for large inputs.
fn add_norm_rows(isa: Isa, x: &mut [f32], added: &[f32], norm: &Norm, eps: f32, threads: usize) {
    let width = norm.0.len();
    let rows = x.len() / width;
    let parts = if threads > 1 && x.len() >= PARALLEL_NORM { threads } else { 1 };
    let out = SendPtr(x.as_mut_ptr());
    for_each_part(parts, rows, |range| {
        let (start, len) = (range.start * width, range.len() * width);
        // SAFETY: parts get disjoint row ranges of x.
        let rows = unsafe { std::slice::from_raw_parts_mut(out.get().add(start), len) };
        add_norm(isa, rows, &added[start..start + len], &norm.0, &norm.1, eps);
    });
}

pub(crate) struct CpuLayer {
    qkv: Linear,
    attention_output: Linear,
    attention_norm: (Vec<f32>, Vec<f32>),
    intermediate: Linear,
    output: Linear,
    output_norm: (Vec<f32>, Vec<f32>),
    eps: f32,
    heads: usize,
    hidden: usize,
    inner: usize,
}

impl CpuLayer {
    /// Pack (or quantize) the layer's weights; None when it needs an op this path lacks.
    pub(crate) fn new(weights: LayerWeights, precision: Precision) -> Option<Self> {
        if !weights.gelu {
            return None;
        }
        let hidden = weights.attention_output.out_dim;
        let inner = weights.intermediate.out_dim;
        Some(CpuLayer {
            qkv: Linear::new(weights.qkv, precision),
            attention_output: Linear::new(weights.attention_output, precision),
            attention_norm: weights.attention_norm,
            intermediate: Linear::new(weights.intermediate, precision),
            output: Linear::new(weights.output, precision),
            output_norm: weights.output_norm,
            eps: weights.eps,
            heads: weights.heads,
            hidden,
            inner,
        })
    }

    fn forward(&self, isa: Isa, x: &mut [f32], work: &mut Workspace, bias: &[f32], batch: usize, seq: usize) {
        let rows = batch * seq;
        let (h, threads) = (self.hidden, threads());
        let Workspace { qkv, context, inner } = work;
        let (qkv, context, inner) =
            (&mut qkv[..rows * 3 * h], &mut context[..rows * h], &mut inner[..rows * self.inner]);
        self.qkv.forward(isa, x, rows, Activation::Identity, qkv, threads);
        let shape = Shape { batch, seq, heads: self.heads, head_dim: h / self.heads };
        self_attention(isa, qkv, bias, shape, context, threads);
        // The attention output lands in the qkv buffer's first third (free now) and is added to
        // x, the residual, which takes the normed sum in place.
        let attended = &mut qkv[..rows * h];
        self.attention_output.forward(isa, context, rows, Activation::Identity, attended, threads);
        add_norm_rows(isa, x, attended, &self.attention_norm, self.eps, threads);
        self.intermediate.forward(isa, x, rows, Activation::Gelu, inner, threads);
        let out = &mut qkv[..rows * h];
        self.output.forward(isa, inner, rows, Activation::Identity, out, threads);
        add_norm_rows(isa, x, out, &self.output_norm, self.eps, threads);
    }
}

#[derive(Default)]
struct Workspace {
    qkv: Vec<f32>,
    context: Vec<f32>,
    inner: Vec<f32>,
}

thread_local! {
    /// The last pass's buffers, kept: fresh ones of a few hundred KB come from mmap as zeroed
    /// pages, and faulting them in cost a few % of a pass.
    static WORKSPACE: std::cell::Cell<Workspace> = std::cell::Cell::new(Workspace::default());
}

/// Run `layers` over `x` ((batch * seq, hidden), updated in place) with the per-key additive
/// `bias` (batch * seq). Buffers are reused by every layer, and by the thread's next pass.
pub(crate) fn run_layers(layers: &[&CpuLayer], x: &mut [f32], bias: &[f32], batch: usize, seq: usize) {
    let Some(first) = layers.first() else { return };
    let rows = batch * seq;
    let inner = layers.iter().map(|l| l.inner).max().unwrap_or(first.inner);
    // Taken out of the slot, not borrowed: a pool thread waiting inside this pass may run another
    // request's pass, which then finds the slot empty and allocates its own.
    let mut work = WORKSPACE.take();
    let fit = |buffer: &mut Vec<f32>, len: usize| {
        if buffer.len() < len {
            buffer.resize(len, 0.0);
        }
    };
    fit(&mut work.qkv, rows * 3 * first.hidden);
    fit(&mut work.context, rows * first.hidden);
    fit(&mut work.inner, rows * inner);
    let isa = *ISA;
    for layer in layers {
        layer.forward(isa, x, &mut work, bias, batch, seq);
    }
    // A large batch's buffers are not kept (a pool thread would hold them for good).
    if work.qkv.len() + work.inner.len() <= 4 << 20 {
        WORKSPACE.set(work);
    }
}

static ISA: std::sync::LazyLock<Isa> = std::sync::LazyLock::new(Isa::detect);
