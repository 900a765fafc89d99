//! What the heads produced, moved to the host: per-text rows, put back in input order.

use crate::error::{Error, Result};
use crate::model::heads::{Head, HeadBatch};
use crate::tokenize::TokenBatch;

/// Per-token scores of one text; special tokens are left out.
pub struct TokenScores {
    pub labels: usize,
    /// (tokens, labels) row-major probabilities.
    pub probabilities: Vec<f32>,
    /// (start, end) of each token in Python string indices.
    pub offsets: Vec<(usize, usize)>,
}

pub enum HeadOutput {
    /// (rows, columns) row-major float32: one row per text.
    Matrix { rows: usize, columns: usize, data: Vec<f32> },
    /// One entry per text.
    Tokens(Vec<TokenScores>),
}

/// Put one chunk's rows (per head) at their texts' places.
pub(super) fn store(outputs: &mut [Vec<Option<RowOutput>>], indices: &[usize], rows: Vec<Vec<RowOutput>>) {
    for (slot, rows) in rows.into_iter().enumerate() {
        for (row, index) in rows.into_iter().zip(indices) {
            outputs[slot][*index] = Some(row);
        }
    }
}

pub(super) enum RowOutput {
    Row(Vec<f32>),
    Tokens(TokenScores),
}

/// Every head's output for one chunk, as host rows (one list per head).
pub(super) fn host_rows(outputs: Vec<HeadBatch>, batch: &TokenBatch) -> Result<Vec<Vec<RowOutput>>> {
    outputs.into_iter().map(|output| split_rows(output, batch)).collect()
}

pub(super) fn split_rows(output: HeadBatch, batch: &TokenBatch) -> Result<Vec<RowOutput>> {
    match output {
        HeadBatch::Rows(matrix) => Ok(matrix.to_vec2::<f32>()?.into_iter().map(RowOutput::Row).collect()),
        HeadBatch::Tokens(scores) => {
            let (_, _, labels) = scores.dims3()?;
            let scores = scores.to_vec3::<f32>()?;
            Ok(scores
                .into_iter()
                .zip(&batch.texts)
                .map(|(rows, text)| {
                    let mut probabilities = Vec::new();
                    let mut offsets = Vec::new();
                    for (position, row) in rows.into_iter().enumerate().take(text.ids.len()) {
                        if !text.special[position] {
                            probabilities.extend(row);
                            offsets.push(text.offsets[position]);
                        }
                    }
                    RowOutput::Tokens(TokenScores { labels, probabilities, offsets })
                })
                .collect())
        }
    }
}

pub(super) fn assemble(head: &Head, hidden_size: usize, rows: Vec<Option<RowOutput>>) -> Result<HeadOutput> {
    let columns = head.width(hidden_size);
    let missing = || Error::Inference("a text produced no output".into());
    if matches!(head, Head::Token { .. }) {
        let tokens = rows
            .into_iter()
            .map(|row| match row {
                Some(RowOutput::Tokens(scores)) => Ok(scores),
                _ => Err(missing()),
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(HeadOutput::Tokens(tokens));
    }
    let count = rows.len();
    let mut data = Vec::with_capacity(count * columns);
    for row in rows {
        match row {
            Some(RowOutput::Row(values)) => data.extend(values),
            _ => return Err(missing()),
        }
    }
    Ok(HeadOutput::Matrix { rows: count, columns, data })
}
