//! Tokenization: tokenizer.json -> a padded batch of ids and masks, with offsets in code points.
//!
//! Many exported tokenizer.json files carry fixed padding and truncation (all-MiniLM-L6-v2's pads
//! every text to 128 tokens); we drop both and set our own, or masked pooling would average pad
//! vectors and long texts would be cut at the wrong length.

use std::path::Path;

use tokenizers::utils::parallelism::MaybeParallelIterator;
use tokenizers::{Encoding, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};
use crate::wordpiece::FastWordPiece;

/// Texts longer than this many characters per allowed token are tokenized from a prefix first:
/// truncation happens only after full tokenization, so a 1 MB prompt would otherwise cost ~1 s.
const PREFIX_CHARS_PER_TOKEN: usize = 16;
/// Batches of at least this many texts are tokenized on all cores (rayon, as `tokenizers`'
/// `encode_batch`; TOKENIZERS_PARALLELISM=false turns it off). One core tokenizes ~0.6 M tokens/s,
/// a GPU encodes several M: serial tokenization would bound GPU throughput. Below this, the
/// thread hand-off costs more than it saves.
const PARALLEL_MIN_TEXTS: usize = 8;

pub struct TextTokenizer {
    truncating: Tokenizer,
    counting: Tokenizer,
    /// BERT WordPiece on ASCII text, ids only (wordpiece.rs); None for other tokenizers.
    fast: Option<FastWordPiece>,
    max_length: usize,
    pad_id: u32,
}

/// One tokenized text: ids, which tokens are special, and character offsets into the input
/// (`special` and `offsets` are empty when tokenized for ids only, `TextTokenizer::tokenize_ids`).
pub struct TokenizedText {
    pub ids: Vec<u32>,
    pub special: Vec<bool>,
    /// (start, end) in Python string indices (Unicode code points).
    pub offsets: Vec<(usize, usize)>,
}

/// A padded batch, row-major (batch, seq_len).
pub struct TokenBatch {
    pub texts: Vec<TokenizedText>,
    pub seq_len: usize,
    pub ids: Vec<u32>,
    pub mask: Vec<u32>,
}

impl TextTokenizer {
    pub fn load(path: &Path, max_length: usize, pad_id: u32) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::load(path, "file not found (expected a Hugging Face tokenizer.json)"));
        }
        let json = std::fs::read_to_string(path)
            .map_err(|e| Error::load(path, format!("cannot read tokenizer.json ({e})")))?;
        let mut counting: Tokenizer =
            json.parse().map_err(|e| Error::load(path, format!("not a valid tokenizer.json ({e})")))?;
        counting.with_padding(None);
        counting
            .with_truncation(None)
            .map_err(|e| Error::load(path, format!("cannot disable truncation ({e})")))?;
        let mut truncating = counting.clone();
        truncating
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| Error::load(path, format!("cannot truncate to {max_length} ({e})")))?;
        let fast = FastWordPiece::new(&json, &counting);
        Ok(TextTokenizer { truncating, counting, fast, max_length, pad_id })
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Whether ids-only tokenization takes the fast WordPiece path (for ASCII text).
    pub fn has_fast_path(&self) -> bool {
        self.fast.is_some()
    }

    /// Token counts without truncation, special tokens included.
    pub fn count(&self, texts: &[String]) -> Result<Vec<usize>> {
        texts
            .into_maybe_par_iter_cond(texts.len() >= PARALLEL_MIN_TEXTS)
            .map(|text| {
                if let Some(count) = self.fast.as_ref().and_then(|fast| fast.count(text, &mut Vec::new())) {
                    return Ok(count);
                }
                self.counting
                    .encode_fast(text.as_str(), true)
                    .map(|encoding| encoding.len())
                    .map_err(|e| Error::Inference(format!("tokenization failed: {e}")))
            })
            .collect()
    }

    /// `offsets`: character offsets wanted (token heads); without, `tokenizers`' faster
    /// `encode_fast` (no offset conversion, whose per-text byte-to-char map is costly).
    fn encode(&self, text: &str, offsets: bool) -> Result<Encoding> {
        let encode = |input: &str| {
            let encoded = if offsets {
                self.truncating.encode_char_offsets(input, true)
            } else {
                self.truncating.encode_fast(input, true)
            };
            encoded.map_err(|e| Error::Inference(format!("tokenization failed: {e}")))
        };
        // Tokenize a prefix cut at whitespace (a word boundary for WordPiece and byte-level BPE
        // alike); if it still overflows the limit, the kept tokens are exactly the full text's.
        let cap = self.max_length.saturating_mul(PREFIX_CHARS_PER_TOKEN);
        if let Some((cut, _)) = text.char_indices().nth(cap) {
            if let Some(boundary) = text[..cut].rfind(char::is_whitespace) {
                let encoding = encode(&text[..boundary])?;
                if !encoding.get_overflowing().is_empty() {
                    return Ok(encoding);
                }
            }
        }
        encode(text)
    }

    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Ids only: `special` and `offsets` are left empty (every head but token heads).
    pub fn tokenize_ids(&self, texts: &[String]) -> Result<TokenBatch> {
        let limit = self.max_length.saturating_sub(2);
        let texts = texts
            .into_maybe_par_iter_cond(texts.len() >= PARALLEL_MIN_TEXTS)
            .map(|text| {
                if let Some(fast) = &self.fast {
                    let mut ids = Vec::with_capacity(text.len() / 4 + 2);
                    if fast.encode(text, Some(limit), &mut ids) {
                        return Ok(TokenizedText { ids, special: Vec::new(), offsets: Vec::new() });
                    }
                }
                let encoding = self.encode(text, false)?;
                Ok(TokenizedText {
                    ids: encoding.get_ids().to_vec(),
                    special: Vec::new(),
                    offsets: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TokenBatch::from_texts(texts, self.pad_id))
    }

    /// Ids, special-token flags and character offsets.
    pub fn tokenize(&self, texts: &[String]) -> Result<TokenBatch> {
        let texts = texts
            .into_maybe_par_iter_cond(texts.len() >= PARALLEL_MIN_TEXTS)
            .map(|text| {
                let encoding = self.encode(text, true)?;
                Ok(TokenizedText {
                    ids: encoding.get_ids().to_vec(),
                    special: encoding.get_special_tokens_mask().iter().map(|&s| s == 1).collect(),
                    offsets: encoding.get_offsets().to_vec(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TokenBatch::from_texts(texts, self.pad_id))
    }
}

impl TokenBatch {
    /// Pad `texts` to the longest of them.
    pub fn from_texts(texts: Vec<TokenizedText>, pad_id: u32) -> Self {
        let seq_len = texts.iter().map(|t| t.ids.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![pad_id; texts.len() * seq_len];
        let mut mask = vec![0u32; texts.len() * seq_len];
        for (row, text) in texts.iter().enumerate() {
            let start = row * seq_len;
            ids[start..start + text.ids.len()].copy_from_slice(&text.ids);
            mask[start..start + text.ids.len()].fill(1);
        }
        TokenBatch { texts, seq_len, ids, mask }
    }
}
