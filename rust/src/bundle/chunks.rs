//! Cutting a request's texts into forward passes: length-sorted chunks bounded in texts and padded
//! tokens, and the slices a GPU tokenizes while it runs the slice before.

use crate::error::Result;
use crate::tokenize::{TextTokenizer, TokenBatch};

/// Texts are run in chunks of similar length, so one long text does not pad a whole batch and
/// memory stays bounded for any input size: at most `texts` texts and `tokens` padded tokens per
/// forward pass.
#[derive(Clone, Copy, Debug)]
pub(super) struct ChunkLimits {
    pub texts: usize,
    pub tokens: usize,
}

/// On a CPU, 64 texts already keep every core's matrix units busy.
pub(super) const CPU_CHUNKS: ChunkLimits = ChunkLimits { texts: 64, tokens: 16_384 };
/// A GPU needs more rows to fill its SMs (the 128-token throughput of BERT-base still grows
/// from 64 to 256 texts). Memory stays small: the largest activation, BERT-base's attention
/// scores at 32 k tokens of 512-token texts, is 64 x 12 x 512 x 512 x 2 bytes = 400 MB.
pub(super) const GPU_CHUNKS: ChunkLimits = ChunkLimits { texts: 256, tokens: 32_768 };

pub(super) struct Chunk {
    pub indices: Vec<usize>,
    pub batch: TokenBatch,
}

/// On a GPU, inputs of more than this many texts are tokenized slice by slice, overlapped with
/// the forward passes (see `Bundle::run_pipelined`).
pub(super) const PIPELINE_SLICE: usize = 128;

/// The slice with the fast WordPiece path: only the first slice's tokenization is visible before
/// the GPU starts, and an H200 runs BERT-base as efficiently at 64 texts as at 256 (3.05 vs 12.1
/// ms of GPU time for 8 k vs 32 k tokens), so calls of 65-256 texts are cut in slices of 64, each
/// one chunk that a 64-row CUDA graph can replay, while the next slice is tokenized.
pub(super) const FAST_PIPELINE_SLICE: usize = 64;

/// Tokenize, order by length, and cut into chunks bounded in texts and padded tokens.
/// `offsets`: whether a token head needs character offsets (otherwise ids only, much faster).
pub(super) fn length_sorted_chunks(
    tokenizer: &TextTokenizer,
    texts: &[String],
    limits: ChunkLimits,
    offsets: bool,
) -> Result<Vec<Chunk>> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let batch = if offsets { tokenizer.tokenize(texts)? } else { tokenizer.tokenize_ids(texts)? };
    let lengths: Vec<usize> = batch.texts.iter().map(|t| t.ids.len()).collect();
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for index in order {
        // Sorted ascending, so this text is the longest of the group so far.
        let padded = (current.len() + 1) * lengths[index].max(1);
        if !current.is_empty() && (current.len() == limits.texts || padded > limits.tokens) {
            groups.push(std::mem::take(&mut current));
        }
        current.push(index);
    }
    groups.push(current);
    if groups.len() == 1 && groups[0].iter().enumerate().all(|(i, &j)| i == j) {
        return Ok(vec![Chunk { indices: groups.remove(0), batch }]);
    }
    let mut slots: Vec<Option<crate::tokenize::TokenizedText>> = batch.texts.into_iter().map(Some).collect();
    Ok(groups
        .into_iter()
        .map(|indices| {
            let members = indices.iter().filter_map(|&i| slots[i].take()).collect();
            Chunk { batch: TokenBatch::from_texts(members, tokenizer.pad_id()), indices }
        })
        .collect())
}
