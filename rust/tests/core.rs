//! Cargo tests of the core on the committed tiny models (tests/fixtures/models), copied to a temp
//! dir where a test breaks them. Python-side parity tests cover every architecture in depth; these
//! check the Rust API on its own: loading, errors, tokenization, batching and half precision.

use std::path::{Path, PathBuf};

use _core::tokenize::TextTokenizer;
use _core::{Bundle, HeadOutput};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name)
}

fn reference(name: &str) -> serde_json::Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reference").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn texts(reference: &serde_json::Value) -> Vec<String> {
    reference["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect()
}

const SEQUENCE: &str = r#"{"head": {"kind": "sequence", "pooling": "cls", "transform": "bert_pooler"}}"#;
const MODERN_SEQUENCE: &str =
    r#"{"head": {"kind": "sequence", "pooling": "mean", "transform": "modernbert_head"}}"#;

fn matrix(output: &HeadOutput) -> (usize, usize, &[f32]) {
    match output {
        HeadOutput::Matrix { rows, columns, data } => (*rows, *columns, data),
        HeadOutput::Tokens(_) => panic!("expected a matrix"),
    }
}

fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max)
}

#[test]
fn bert_and_modernbert_match_transformers() {
    for (name, heads) in [("bert-seq", SEQUENCE), ("modernbert-seq", MODERN_SEQUENCE)] {
        let reference = reference(name);
        let bundle = Bundle::load(&fixture(name), heads, "cpu", None, None).unwrap();
        let outputs = bundle.run(&texts(&reference), None).unwrap();
        let (rows, columns, data) = matrix(&outputs[0].1);
        assert_eq!((rows, columns), (texts(&reference).len(), 3));
        let expected: Vec<f64> = reference["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        let diff = max_abs_diff(data, &expected);
        assert!(diff <= 1e-4, "{name}: max abs diff {diff}");
    }
}

#[test]
fn fixed_padding_in_tokenizer_json_is_ignored_and_offsets_are_code_points() {
    // The fixture tokenizers carry Fixed(128) padding, as all-MiniLM-L6-v2's does.
    let tokenizer = TextTokenizer::load(&fixture("bert-token").join("tokenizer.json"), 128, 0).unwrap();
    let batch = tokenizer.tokenize(&["short".to_string(), "Café naïve façade".to_string()]).unwrap();
    assert!(batch.seq_len < 128, "padded to {}", batch.seq_len);
    let cafe = &batch.texts[1];
    let text: Vec<char> = "Café naïve façade".chars().collect();
    for ((start, end), special) in cafe.offsets.iter().zip(&cafe.special) {
        assert!(*end <= text.len(), "offset {end} beyond {} code points", text.len());
        if !special {
            assert!(start < end);
        }
    }
    assert_eq!(cafe.offsets.iter().map(|o| o.1).max(), Some(text.len()));
}

#[test]
fn long_texts_are_truncated_and_the_prefix_shortcut_is_exact() {
    let tokenizer = TextTokenizer::load(&fixture("bert-seq").join("tokenizer.json"), 32, 0).unwrap();
    let words = "alpha beta gamma delta epsilon ".repeat(400);
    let batch = tokenizer.tokenize(&[words.clone(), words[..600].to_string()]).unwrap();
    assert_eq!(batch.texts[0].ids.len(), 32);
    // Both are cut to the same 32 tokens: the shortcut (tokenizing a prefix) changes nothing.
    assert_eq!(batch.texts[0].ids, batch.texts[1].ids);
    assert!(tokenizer.count(&[words]).unwrap()[0] > 32);
}

#[test]
fn missing_and_broken_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        let model = dir.path().join(format!("without-{file}"));
        std::fs::create_dir(&model).unwrap();
        for entry in std::fs::read_dir(fixture("bert-seq")).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != file {
                std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
            }
        }
        let error = Bundle::load(&model, SEQUENCE, "cpu", None, None).err().unwrap().to_string();
        assert!(error.contains(file), "{error}");
    }
    let error = Bundle::load(&dir.path().join("absent"), SEQUENCE, "cpu", None, None).err().unwrap();
    assert!(error.to_string().contains("model directory not found"), "{error}");
}

#[test]
fn half_precision_masks_give_no_nan() {
    let reference = reference("modernbert-seq");
    for dtype in ["float16", "bfloat16"] {
        let bundle =
            Bundle::load(&fixture("modernbert-seq"), MODERN_SEQUENCE, "cpu", Some(dtype), None).unwrap();
        let outputs = bundle.run(&texts(&reference), None).unwrap();
        let (_, _, data) = matrix(&outputs[0].1);
        assert!(data.iter().all(|v| v.is_finite()), "{dtype} produced NaN/inf");
    }
}

#[test]
fn unknown_heads_and_bad_specs_are_argument_errors() {
    let bundle = Bundle::load(&fixture("bert-seq"), SEQUENCE, "cpu", None, None).unwrap();
    let error = bundle.run(&["x".to_string()], Some(&["nope".to_string()])).err().unwrap();
    assert!(error.to_string().contains("nope"));
    let bad = r#"{"head": {"kind": "sequence", "pooling": "max"}}"#;
    assert!(Bundle::load(&fixture("bert-seq"), bad, "cpu", None, None).is_err());
    let typo = r#"{"head": {"kind": "sequence", "polling": "cls"}}"#;
    let error = Bundle::load(&fixture("bert-seq"), typo, "cpu", None, None).err().unwrap().to_string();
    assert!(error.contains("polling"), "{error}");
}

#[test]
fn outputs_keep_input_order_across_length_sorted_chunks() {
    let bundle = Bundle::load(&fixture("bert-seq"), SEQUENCE, "cpu", None, None).unwrap();
    // 150 texts of varied length: several chunks, sorted by length internally.
    let texts: Vec<String> = (0..150).map(|i| "word ".repeat(1 + (i * 37) % 90)).collect();
    let all = bundle.run(&texts, None).unwrap();
    let (_, columns, data) = matrix(&all[0].1);
    for index in [0, 1, 77, 149] {
        let single = bundle.run(&texts[index..=index], None).unwrap();
        let (_, _, expected) = matrix(&single[0].1);
        let row = &data[index * columns..(index + 1) * columns];
        let diff = row.iter().zip(expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "text {index}: {diff}");
    }
}
