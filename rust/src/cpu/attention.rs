//! BERT self-attention on the CPU from the fused QKV rows: per text and head, scores = Q Kᵀ on the
//! packed-panel kernel, a scaled and masked softmax in place, then P V written straight into the
//! head's columns of the context. Heads run in parallel; scratch lives per pool thread.

use std::cell::RefCell;

use super::gemm::{matmul_raw, Activation, Packed};
use super::ops::softmax;
use super::pool::{for_each_part, SendPtr};
use super::Isa;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

struct Scratch {
    keys: Packed,
    values: Packed,
    scores: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        keys: Packed::zeros(0, 0),
        values: Packed::zeros(0, 0),
        scores: Vec::new(),
    });
}

/// `qkv`: (batch * seq, 3 * hidden) rows; `bias`: (batch * seq) additive key bias (0 or a large
/// negative for padding); `context`: (batch * seq, hidden) output.
pub(crate) fn self_attention(
    isa: Isa,
    qkv: &[f32],
    bias: &[f32],
    shape: Shape,
    context: &mut [f32],
    threads: usize,
) {
    let Shape { batch, seq, heads, head_dim } = shape;
    let hidden = heads * head_dim;
    assert!(qkv.len() >= batch * seq * 3 * hidden && context.len() >= batch * seq * hidden);
    assert!(bias.len() >= batch * seq);
    let scale = 1.0 / (head_dim as f32).sqrt();
    let out = SendPtr(context.as_mut_ptr());
    let tasks = batch * heads;
    // One head's work is ~4 seq^2 head_dim flops; split when there are a few hundred thousand.
    let parts = if threads > 1 && seq * seq * head_dim * tasks >= super::PARALLEL_MACS { threads } else { 1 };
    for_each_part(parts, tasks, |range| {
        SCRATCH.with(|scratch| {
            let Scratch { keys, values, scores } = &mut *scratch.borrow_mut();
            for task in range {
                let (text, head) = (task / heads, task % heads);
                let rows = &qkv[text * seq * 3 * hidden..(text + 1) * seq * 3 * hidden];
                let queries = &rows[head * head_dim..];
                keys.reset(seq, head_dim);
                keys.fill_from_rows(&rows[hidden + head * head_dim..], 3 * hidden);
                values.reset(head_dim, seq);
                values.fill_from_columns(&rows[2 * hidden + head * head_dim..], 3 * hidden);
                scores.clear();
                scores.resize(seq * seq, 0.0);
                // SAFETY: queries hold (seq - 1) * 3 hidden + head_dim values from their start;
                // scores are seq x seq.
                unsafe {
                    matmul_raw(
                        isa,
                        queries.as_ptr(),
                        3 * hidden,
                        seq,
                        keys,
                        None,
                        Activation::Identity,
                        SendPtr(scores.as_mut_ptr()),
                        seq,
                        1,
                    )
                };
                softmax(isa, scores, seq, seq, &bias[text * seq..(text + 1) * seq], scale);
                // SAFETY: each task writes its own head's columns of its own text's rows, within
                // the (batch * seq, hidden) context checked above.
                unsafe {
                    let target = SendPtr(out.get().add(text * seq * hidden + head * head_dim));
                    matmul_raw(
                        isa,
                        scores.as_ptr(),
                        seq,
                        seq,
                        values,
                        None,
                        Activation::Identity,
                        target,
                        hidden,
                        1,
                    );
                }
            }
        });
    });
}
