//! Branches: a task's own (fine-tuned) copy of an encoder's top layers over the shared trunk.
//!
//! A branch from layer `k` reads the trunk's hidden state after layers `0..k` (the input of layer
//! `k`; `k = 0` is the embeddings output) and runs its own layers `k..num_layers`. One pass runs
//! the trunk once, as far as the heads of that pass need it, and each needed branch from the point
//! where it leaves the trunk. Heads that read no branch read the trunk's last layer, as without
//! branches, so the embedding head keeps the original encoder's vectors.
//!
//! A branch file holds `encoder.layer.{k..num_layers}.*` under the encoder's own names (Hugging
//! Face BERT naming, no `bert.` prefix), in any float dtype; it is converted to the model's.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::bert::{layer_tensor_names, load_layers, BertLayer};
use crate::model::config::{Architecture, EncoderConfig};
use crate::model::Encoder;
use crate::weights::Weights;

/// What Python sends for each branch (see `vsr/model_files.py::BranchSpec`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchSpec {
    pub from_layer: usize,
    pub weights: PathBuf,
}

pub struct Branch {
    from_layer: usize,
    layers: Vec<BertLayer>,
}

impl Branch {
    /// Load branch `name` for the encoder described by `config` (read from `config_path`).
    pub fn load(
        name: &str,
        spec: &BranchSpec,
        config: &EncoderConfig,
        config_path: &Path,
        dtype: DType,
        device: &Device,
        precision: Option<crate::cpu::Precision>,
    ) -> Result<Self> {
        let path = spec.weights.as_path();
        if config.architecture != Architecture::Bert {
            return Err(Error::unsupported(
                path,
                format!(
                    "branch {name:?}: branches are implemented for BERT encoders only, and {} \
                     describes a {} encoder",
                    config_path.display(),
                    config.architecture.name()
                ),
            ));
        }
        let (from, count) = (spec.from_layer, config.num_layers);
        if from >= count {
            return Err(Error::load(
                path,
                format!(
                    "branch {name:?}: from_layer {from} must be within 0..{count} (the encoder has \
                     {count} layers, num_hidden_layers in {})",
                    config_path.display()
                ),
            ));
        }
        let weights = Weights::open(path, dtype, device)?;
        // Extra tensors first: a file written under another naming (a `bert.` prefix, other
        // layers) is then named by its first stray tensor rather than a "missing" one.
        let expected: HashSet<String> = (from..count).flat_map(layer_tensor_names).collect();
        let mut extra: Vec<&str> = weights.names().filter(|n| !expected.contains(*n)).collect();
        extra.sort_unstable();
        if let Some(first) = extra.first() {
            return Err(Error::load(
                path,
                format!(
                    "branch {name:?}: unexpected tensor {first:?} ({} unexpected in all); a branch \
                     from layer {from} holds encoder.layer.{from}..{} under the encoder's own names",
                    extra.len(),
                    count - 1
                ),
            ));
        }
        // Missing and misshaped tensors: Weights names the file and the tensor.
        let layers = load_layers(config, &weights, from..count, precision)?;
        Ok(Branch { from_layer: from, layers })
    }

    pub fn from_layer(&self) -> usize {
        self.from_layer
    }
}

/// The hidden states each of `sources` reads (None: the trunk's last layer; Some(b): branch
/// `b`'s last layer), in order, from one trunk pass over `ids`/`mask`.
///
/// The trunk runs up to the earliest layer a needed branch leaves it at, then on only as far as
/// the other needed branches and trunk heads need. Layer inputs are never written in place (the
/// fused CUDA norms overwrite the sublayer output, not the residual), so the trunk and a branch
/// may both read one state.
pub fn hidden_states(
    encoder: &Encoder,
    branches: &[Branch],
    ids: &Tensor,
    mask: &Tensor,
    sources: &[Option<usize>],
) -> Result<Vec<Tensor>> {
    if sources.iter().all(Option::is_none) {
        let hidden = encoder.forward(ids, mask)?;
        return Ok(sources.iter().map(|_| hidden.clone()).collect());
    }
    let Encoder::Bert(bert) = encoder else {
        return Err(Error::Inference("branches need a BERT encoder".into()));
    };
    let trunk_end = bert.layers().len();
    let branch =
        |index: usize| branches.get(index).ok_or_else(|| Error::Inference(format!("no branch {index}")));
    // Where each source leaves the trunk.
    let stops = sources
        .iter()
        .map(|source| match source {
            None => Ok(trunk_end),
            Some(index) => Ok(branch(*index)?.from_layer),
        })
        .collect::<Result<Vec<usize>>>()?;
    let mut points = stops.clone();
    points.sort_unstable();
    points.dedup();
    let (embedded, bias) = bert.start(ids, mask)?;
    let mut states: Vec<(usize, Tensor)> = Vec::with_capacity(points.len());
    let (mut at, mut x) = (0, embedded);
    for point in points {
        let layers = bert
            .layers()
            .get(at..point)
            .ok_or_else(|| Error::Inference(format!("trunk layers {at}..{point} out of range")))?;
        x = bert.run_layers(layers, &x, &bias)?;
        at = point;
        states.push((point, x.clone()));
    }
    sources
        .iter()
        .zip(stops)
        .map(|(source, stop)| {
            let state = states
                .iter()
                .find(|(point, _)| *point == stop)
                .map(|(_, state)| state)
                .ok_or_else(|| Error::Inference(format!("no trunk state at layer {stop}")))?;
            match source {
                None => Ok(state.clone()),
                Some(index) => bert.run_layers(&branch(*index)?.layers, state, &bias),
            }
        })
        .collect()
}
