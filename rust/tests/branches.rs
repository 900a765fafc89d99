//! Branches (a task's own copy of the encoder's top layers) on a 4-layer tiny BERT built in a
//! temp dir from the committed 2-layer fixture: parity against plain models whose layers were
//! replaced, exact equality for copied layers, load errors, and batching.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use _core::{Bundle, HeadOutput};
use candle_core::{DType, Device, Tensor};

const LAYERS: usize = 4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models").join(name)
}

/// Deterministic values in [-scale, scale] (xorshift), so a failure reproduces.
fn noise(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let count: usize = shape.iter().product();
    let values: Vec<f32> = (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// Layer `index`'s tensors (names without the `bert.` prefix) drawn from `seed`: norms near 1.
fn random_layer(template: &HashMap<String, Tensor>, index: usize, seed: u64) -> HashMap<String, Tensor> {
    let prefix = format!("bert.encoder.layer.{}.", index % 2);
    let mut shapes: Vec<(&str, &Tensor)> = template
        .iter()
        .filter_map(|(name, tensor)| name.strip_prefix(&prefix).map(|suffix| (suffix, tensor)))
        .collect();
    shapes.sort_by_key(|(suffix, _)| *suffix);
    shapes
        .into_iter()
        .enumerate()
        .map(|(k, (suffix, tensor))| {
            let values = noise(tensor.dims(), seed * 100 + k as u64, 0.2);
            let values = if suffix.ends_with("LayerNorm.weight") { (values + 1.0).unwrap() } else { values };
            (format!("encoder.layer.{index}.{suffix}"), values)
        })
        .collect()
}

struct Model {
    dir: PathBuf,
    /// Every tensor of model.safetensors (`bert.` prefix).
    tensors: HashMap<String, Tensor>,
}

/// A 4-layer model: the fixture's embeddings, pooler, classifier and layers 0-1, and layers 2-3
/// drawn at random. `replaced` (names without prefix) overrides layers.
fn write_model(dir: &Path, base: &HashMap<String, Tensor>, replaced: &HashMap<String, Tensor>) -> Model {
    std::fs::create_dir_all(dir).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("bert-seq").join("config.json")).unwrap())
            .unwrap();
    config["num_hidden_layers"] = LAYERS.into();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(fixture("bert-seq").join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    let mut tensors = base.clone();
    for (name, tensor) in replaced {
        tensors.insert(format!("bert.{name}"), tensor.clone());
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    Model { dir: dir.to_path_buf(), tensors }
}

fn base_model(root: &Path) -> Model {
    let fixture =
        candle_core::safetensors::load(fixture("bert-seq").join("model.safetensors"), &Device::Cpu).unwrap();
    let mut extra = random_layer(&fixture, 2, 2);
    extra.extend(random_layer(&fixture, 3, 3));
    write_model(&root.join("base"), &fixture, &extra)
}

/// Layers `from..LAYERS` of `model` under the encoder's names, as `dtype`, written to `path`.
fn write_branch(path: &Path, layers: &HashMap<String, Tensor>, from: usize, dtype: DType) {
    let tensors: HashMap<String, Tensor> = layers
        .iter()
        .filter(|(name, _)| layer_of(name).is_some_and(|layer| layer >= from))
        .map(|(name, tensor)| (name.clone(), tensor.to_dtype(dtype).unwrap()))
        .collect();
    candle_core::safetensors::save(&tensors, path).unwrap();
}

fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("encoder.layer.")?.split('.').next()?.parse().ok()
}

/// The model's encoder layers under names without the `bert.` prefix.
fn encoder_layers(model: &Model) -> HashMap<String, Tensor> {
    model
        .tensors
        .iter()
        .filter_map(|(name, t)| Some((name.strip_prefix("bert.")?.to_string(), t.clone())))
        .filter(|(name, _)| name.starts_with("encoder.layer."))
        .collect()
}

/// Heads reading `source` (None: the trunk): a sequence head on the pooler, an embedding head and
/// a token head (a head file in `root`), named with `suffix`.
fn heads(root: &Path, branch: Option<&str>, suffix: &str) -> serde_json::Value {
    let token_file = root.join("token.safetensors");
    if !token_file.exists() {
        let layer = HashMap::from([
            ("layers.weight".to_string(), noise(&[5, 32], 7, 0.5)),
            ("layers.bias".to_string(), noise(&[5], 8, 0.5)),
        ]);
        candle_core::safetensors::save(&layer, &token_file).unwrap();
    }
    let branch = serde_json::to_value(branch).unwrap();
    serde_json::json!({
        format!("sequence{suffix}"): {"kind": "sequence", "pooling": "cls", "transform": "bert_pooler", "branch": branch},
        format!("embedding{suffix}"): {"kind": "embedding", "pooling": "mean", "normalize": true, "branch": branch},
        format!("token{suffix}"): {"kind": "token", "weights": token_file, "prefix": "layers", "branch": branch},
    })
}

fn merged(parts: &[serde_json::Value]) -> String {
    let mut all = serde_json::Map::new();
    for part in parts {
        all.extend(part.as_object().unwrap().clone());
    }
    serde_json::Value::Object(all).to_string()
}

fn load(model: &Path, heads: &str, branches: &serde_json::Value) -> _core::Result<Bundle> {
    Bundle::load_with_branches(model, heads, Some(&branches.to_string()), "cpu", None, None)
}

fn values(output: &HeadOutput) -> Vec<f32> {
    match output {
        HeadOutput::Matrix { data, .. } => data.clone(),
        HeadOutput::Tokens(texts) => texts.iter().flat_map(|t| t.probabilities.clone()).collect(),
    }
}

fn run(bundle: &Bundle, texts: &[String], names: Option<&[&str]>) -> HashMap<String, Vec<f32>> {
    let names: Option<Vec<String>> = names.map(|n| n.iter().map(|s| s.to_string()).collect());
    bundle
        .run(texts, names.as_deref())
        .unwrap()
        .iter()
        .map(|(name, out)| (name.clone(), values(out)))
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn texts() -> Vec<String> {
    ["hello world", "a much longer text that pads the others in its batch, with more words", "x", ""]
        .map(String::from)
        .to_vec()
}

#[test]
fn a_branch_of_copied_layers_gives_exactly_the_trunk_outputs() {
    let root = tempfile::tempdir().unwrap();
    let model = base_model(root.path());
    let layers = encoder_layers(&model);
    let all_heads = merged(&[heads(root.path(), None, ""), heads(root.path(), Some("copy"), "_copy")]);
    for from in 0..LAYERS {
        let file = root.path().join(format!("copy{from}.safetensors"));
        write_branch(&file, &layers, from, DType::F32);
        let branches = serde_json::json!({"copy": {"from_layer": from, "weights": file}});
        let bundle = load(&model.dir, &all_heads, &branches).unwrap();
        let together = run(&bundle, &texts(), None);
        // Only branch heads: the trunk stops at `from`.
        let alone = run(&bundle, &texts(), Some(&["sequence_copy", "embedding_copy", "token_copy"]));
        for head in ["sequence", "embedding", "token"] {
            let trunk = &together[head];
            assert_eq!(&together[&format!("{head}_copy")], trunk, "{head}, from_layer {from}");
            assert_eq!(&alone[&format!("{head}_copy")], trunk, "{head} alone, from_layer {from}");
        }
    }
}

#[test]
fn a_branch_matches_a_plain_model_with_those_layers_replaced() {
    let root = tempfile::tempdir().unwrap();
    let model = base_model(root.path());
    let base_layers = encoder_layers(&model);
    let plain =
        Bundle::load(&model.dir, &heads(root.path(), None, "").to_string(), "cpu", None, None).unwrap();
    let trunk = run(&plain, &texts(), None);
    // Two branches in one bundle, leaving the trunk at different layers, stored in half precision
    // too (converted at load; the reference model holds the same rounded values).
    for (first, second, dtype) in [(0, 3, DType::F32), (1, 2, DType::F16), (2, 3, DType::BF16)] {
        let mut parts = vec![heads(root.path(), None, "")];
        let mut branches = serde_json::Map::new();
        let mut references = Vec::new();
        for (name, from, seed) in [("first", first, 10), ("second", second, 20)] {
            let replaced: HashMap<String, Tensor> = (from..LAYERS)
                .flat_map(|index| random_layer(&model.tensors, index, seed + index as u64))
                .map(|(name, t)| (name, t.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap()))
                .collect();
            let file = root.path().join(format!("{name}-{from}.safetensors"));
            write_branch(&file, &replaced, from, dtype);
            branches.insert(name.into(), serde_json::json!({"from_layer": from, "weights": file}));
            parts.push(heads(root.path(), Some(name), &format!("_{name}")));
            let reference_dir = root.path().join(format!("model-{name}-{from}-{dtype:?}"));
            let mut layers = base_layers.clone();
            layers.extend(replaced);
            let reference = write_model(&reference_dir, &model.tensors, &layers);
            let reference =
                Bundle::load(&reference.dir, &heads(root.path(), None, "").to_string(), "cpu", None, None)
                    .unwrap();
            references.push((name, run(&reference, &texts(), None)));
        }
        let bundle = load(&model.dir, &merged(&parts), &serde_json::Value::Object(branches)).unwrap();
        let outputs = run(&bundle, &texts(), None);
        for head in ["sequence", "embedding", "token"] {
            assert_eq!(outputs[head], trunk[head], "trunk head {head} changed");
            for (name, expected) in &references {
                let diff = max_diff(&outputs[&format!("{head}_{name}")], &expected[head]);
                assert!(diff <= 1e-5, "{head}_{name} ({dtype:?}): max abs diff {diff}");
                let differs = max_diff(&outputs[&format!("{head}_{name}")], &trunk[head]);
                assert!(differs > 1e-3, "{head}_{name} reads the trunk, not its branch");
            }
        }
        // One branch alone: the other branch and the trunk's end are not needed.
        let alone = run(&bundle, &texts(), Some(&["sequence_second"]));
        assert!(max_diff(&alone["sequence_second"], &references[1].1["sequence"]) <= 1e-5);
    }
}

fn error(result: _core::Result<Bundle>) -> String {
    match result {
        Ok(_) => panic!("expected a load error"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn broken_branches_are_load_errors_naming_file_and_tensor() {
    let root = tempfile::tempdir().unwrap();
    let model = base_model(root.path());
    let layers = encoder_layers(&model);
    let branch_heads = heads(root.path(), Some("tasks"), "").to_string();
    let branch =
        |from: usize, file: &Path| serde_json::json!({"tasks": {"from_layer": from, "weights": file}});
    let good = root.path().join("good.safetensors");
    write_branch(&good, &layers, 2, DType::F32);
    assert!(load(&model.dir, &branch_heads, &branch(2, &good)).is_ok());

    let unknown = heads(root.path(), Some("nope"), "").to_string();
    let message = error(load(&model.dir, &unknown, &branch(2, &good)));
    assert!(message.contains("\"nope\"") && message.contains("not defined"), "{message}");

    let message = error(load(&model.dir, &branch_heads, &branch(LAYERS, &good)));
    assert!(message.contains("from_layer 4 must be within 0..4"), "{message}");
    assert!(message.contains("good.safetensors"), "{message}");

    let mut missing = layers.clone();
    missing.remove("encoder.layer.3.output.dense.bias");
    let file = root.path().join("missing.safetensors");
    write_branch(&file, &missing, 2, DType::F32);
    let message = error(load(&model.dir, &branch_heads, &branch(2, &file)));
    assert!(message.contains("missing.safetensors") && message.contains("encoder.layer.3.output.dense.bias"));

    // Layer 1 is not part of a branch from layer 2.
    let file = root.path().join("extra.safetensors");
    write_branch(&file, &layers, 1, DType::F32);
    let message = error(load(&model.dir, &branch_heads, &branch(2, &file)));
    assert!(message.contains("extra.safetensors") && message.contains("unexpected tensor"), "{message}");
    assert!(message.contains("encoder.layer.1."), "{message}");

    let mut prefixed = HashMap::new();
    for (name, tensor) in layers.iter().filter(|(name, _)| layer_of(name).is_some_and(|l| l >= 2)) {
        prefixed.insert(format!("bert.{name}"), tensor.clone());
    }
    let file = root.path().join("prefixed.safetensors");
    candle_core::safetensors::save(&prefixed, &file).unwrap();
    let message = error(load(&model.dir, &branch_heads, &branch(2, &file)));
    assert!(message.contains("unexpected tensor \"bert.encoder.layer.2."), "{message}");

    let mut misshaped = layers.clone();
    misshaped.insert("encoder.layer.2.intermediate.dense.weight".into(), noise(&[32, 64], 1, 0.1));
    let file = root.path().join("misshaped.safetensors");
    write_branch(&file, &misshaped, 2, DType::F32);
    let message = error(load(&model.dir, &branch_heads, &branch(2, &file)));
    assert!(message.contains("misshaped.safetensors"), "{message}");
    assert!(message.contains("encoder.layer.2.intermediate.dense.weight") && message.contains("[64, 32]"));

    let absent = root.path().join("absent.safetensors");
    let message = error(load(&model.dir, &branch_heads, &branch(2, &absent)));
    assert!(message.contains("absent.safetensors") && message.contains("not found"), "{message}");

    let modern = r#"{"head": {"kind": "sequence", "pooling": "mean", "transform": "modernbert_head", "branch": "tasks"}}"#;
    let result = load(&fixture("modernbert-seq"), modern, &branch(2, &good));
    assert!(matches!(result, Err(_core::Error::Unsupported { .. })));
    let message = error(result);
    assert!(message.contains("BERT encoders only") && message.contains("modernbert"), "{message}");
}

#[test]
fn branch_outputs_keep_input_order_across_length_sorted_chunks() {
    let root = tempfile::tempdir().unwrap();
    let model = base_model(root.path());
    let replaced: HashMap<String, Tensor> =
        (1..LAYERS).flat_map(|index| random_layer(&model.tensors, index, 40 + index as u64)).collect();
    let file = root.path().join("tasks.safetensors");
    write_branch(&file, &replaced, 1, DType::F32);
    let all_heads = merged(&[heads(root.path(), None, ""), heads(root.path(), Some("tasks"), "_tasks")]);
    let bundle =
        load(&model.dir, &all_heads, &serde_json::json!({"tasks": {"from_layer": 1, "weights": file}}))
            .unwrap();
    // 150 texts of varied length (several chunks of 64, sorted by length inside).
    let texts: Vec<String> = (0..150).map(|i| "word ".repeat(1 + (i * 37) % 90)).collect();
    let together = bundle.run(&texts, None).unwrap();
    for (index, text) in texts.iter().enumerate() {
        let alone = bundle.run(std::slice::from_ref(text), None).unwrap();
        for ((name, all), (_, one)) in together.iter().zip(&alone) {
            let expected = values(one);
            let got = match all {
                HeadOutput::Matrix { columns, data, .. } => {
                    data[index * columns..(index + 1) * columns].to_vec()
                }
                HeadOutput::Tokens(texts) => texts[index].probabilities.clone(),
            };
            let diff = max_diff(&got, &expected);
            assert!(diff < 1e-5, "{name}, text {index}: {diff}");
        }
    }
}
