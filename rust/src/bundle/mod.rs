//! A loaded encoder with its tokenizer and named heads: one forward pass serves every head.

mod chunks;
mod outputs;
mod readback;
mod specs;
mod warm_up;

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::cpu::Precision;
use crate::device::{device_name, dtype_name, exclusive, parse_device, parse_numerics};
use crate::error::{Error, Result};
use crate::model::branch::{hidden_states, Branch};
use crate::model::heads::{Head, HeadBatch, PooledViews};
use crate::model::{Encoder, EncoderConfig};
use crate::tokenize::{TextTokenizer, TokenBatch};
use crate::weights::Weights;
use chunks::{
    length_sorted_chunks, Chunk, ChunkLimits, CPU_CHUNKS, FAST_PIPELINE_SLICE, GPU_CHUNKS, PIPELINE_SLICE,
};
use outputs::{assemble, host_rows, store, RowOutput};
pub use outputs::{HeadOutput, TokenScores};
use readback::Readback;
use specs::{head_sources, parse_branch_specs, parse_head_specs};

/// A loaded head and where it reads its hidden states.
struct BundleHead {
    name: String,
    head: Head,
    /// An index into `Bundle::branches`; None: the encoder's last layer.
    branch: Option<usize>,
}

pub struct Bundle {
    tokenizer: TextTokenizer,
    encoder: Encoder,
    config: EncoderConfig,
    heads: Vec<BundleHead>,
    branches: Vec<Branch>,
    device: Device,
    dtype: DType,
    /// The CPU layer path's precision (None: candle's ops).
    precision: Option<Precision>,
    /// Recorded forward passes for small batches (CUDA only).
    #[cfg(feature = "cuda")]
    graphs: Option<crate::cuda_graphs::GraphCache>,
    /// Page-locked buffers for reading GPU outputs back asynchronously.
    readback: Readback,
}

/// On a GPU, inputs of more texts than this take `Bundle::run_pipelined` (queued chunks, outputs
/// read back asynchronously); smaller ones are one chunk, or a recorded graph.
const PIPELINE_MIN_TEXTS: usize = 8;

/// A pipelined chunk after `Bundle::start_chunk`: its rows already on the host, or its copy queued.
enum Started {
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    Read(Vec<Vec<RowOutput>>),
    Queued(readback::InFlight),
}

impl Bundle {
    /// Load `model_dir` (config.json, model.safetensors, tokenizer.json) with the heads described
    /// by `heads_json` (an object of name -> HeadSpec).
    pub fn load(
        model_dir: &Path,
        heads_json: &str,
        device: &str,
        dtype: Option<&str>,
        max_length: Option<usize>,
    ) -> Result<Self> {
        Self::load_with_branches(model_dir, heads_json, None, device, dtype, max_length)
    }

    /// As `load`, with the branches described by `branches_json` (an object of name ->
    /// BranchSpec) that heads may read through their `branch` field.
    pub fn load_with_branches(
        model_dir: &Path,
        heads_json: &str,
        branches_json: Option<&str>,
        device: &str,
        dtype: Option<&str>,
        max_length: Option<usize>,
    ) -> Result<Self> {
        if !model_dir.is_dir() {
            return Err(Error::load(model_dir, "model directory not found"));
        }
        let device = parse_device(device)?;
        let (dtype, precision) = parse_numerics(dtype, &device)?;
        let config_path = model_dir.join("config.json");
        if !config_path.is_file() {
            return Err(Error::load(&config_path, "file not found (expected the model's config.json)"));
        }
        let config = EncoderConfig::from_file(&config_path)?;
        let specs = parse_head_specs(heads_json)?;
        let branch_specs = parse_branch_specs(branches_json.unwrap_or("{}"))?;
        let sources = head_sources(&specs, &branch_specs)?;
        let max_length = match max_length {
            None => config.max_positions,
            Some(n) if (2..=config.max_positions).contains(&n) => n,
            Some(n) => {
                return Err(Error::Argument(format!(
                    "max_length {n} must be between 2 and the model's max_position_embeddings {}",
                    config.max_positions
                )))
            }
        };
        let tokenizer =
            TextTokenizer::load(&model_dir.join("tokenizer.json"), max_length, config.pad_token_id)?;
        let weights = Weights::open(&model_dir.join("model.safetensors"), dtype, &device)?;
        let (encoder, weights) = Encoder::load(&config, weights, precision)?;
        let heads = specs
            .iter()
            .zip(sources)
            .map(|((name, spec), branch)| {
                let head = Head::load(spec, &config, &weights, &config_path)?;
                Ok(BundleHead { name: name.clone(), head, branch })
            })
            .collect::<Result<Vec<_>>>()?;
        let branches = branch_specs
            .iter()
            .map(|(name, spec)| Branch::load(name, spec, &config, &config_path, dtype, &device, precision))
            .collect::<Result<Vec<_>>>()?;
        // ModernBERT too: its sliding-window bias is built once per length and kept on the device
        // (modernbert.rs), so a capture records no host upload.
        #[cfg(feature = "cuda")]
        let graphs = crate::cuda_graphs::GraphCache::new(&device);
        let bundle = Bundle {
            tokenizer,
            encoder,
            config,
            heads,
            branches,
            #[cfg(feature = "cuda")]
            graphs,
            device,
            dtype,
            precision,
            readback: Readback::new(),
        };
        bundle.warm_up()?;
        Ok(bundle)
    }

    fn chunk_limits(&self) -> ChunkLimits {
        if self.device.is_cpu() {
            CPU_CHUNKS
        } else {
            GPU_CHUNKS
        }
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }
    pub fn max_length(&self) -> usize {
        self.tokenizer.max_length()
    }
    pub fn device_name(&self) -> String {
        device_name(&self.device)
    }
    pub fn dtype_name(&self) -> &'static str {
        match self.precision {
            Some(Precision::Int8) => return "int8",
            Some(Precision::Bf16) => return "bfloat16",
            _ => {}
        }
        dtype_name(self.dtype)
    }
    pub fn architecture(&self) -> &'static str {
        self.config.architecture.name()
    }
    pub fn head_names(&self) -> Vec<String> {
        self.heads.iter().map(|head| head.name.clone()).collect()
    }

    pub fn count_tokens(&self, texts: &[String]) -> Result<Vec<usize>> {
        self.tokenizer.count(texts)
    }

    /// Run the named heads (all when `None`) over `texts`; outputs keep the input order.
    pub fn run(&self, texts: &[String], names: Option<&[String]>) -> Result<Vec<(String, HeadOutput)>> {
        let selected: Vec<usize> = match names {
            None => (0..self.heads.len()).collect(),
            Some(names) => names
                .iter()
                .map(|name| {
                    self.heads.iter().position(|head| &head.name == name).ok_or_else(|| {
                        Error::Argument(format!("no head {name:?}; heads: {:?}", self.head_names()))
                    })
                })
                .collect::<Result<_>>()?,
        };
        let mut outputs: Vec<Vec<Option<RowOutput>>> =
            selected.iter().map(|_| (0..texts.len()).map(|_| None).collect()).collect();
        // Character offsets only for token heads; everything else tokenizes ids only (faster).
        let offsets = selected.iter().any(|&i| matches!(self.heads[i].head, Head::Token { .. }));
        if !self.device.is_cpu() && texts.len() > PIPELINE_MIN_TEXTS {
            self.run_pipelined(texts, &selected, &mut outputs, offsets)?;
        } else {
            let chunks = length_sorted_chunks(&self.tokenizer, texts, self.chunk_limits(), offsets)?;
            let _device = exclusive(&self.device);
            for chunk in chunks {
                store(&mut outputs, &chunk.indices, self.chunk_rows(&chunk.batch, &selected)?);
            }
        }
        selected
            .iter()
            .zip(outputs)
            .map(|(&i, rows)| {
                let BundleHead { name, head, .. } = &self.heads[i];
                Ok((name.clone(), assemble(head, self.config.hidden_size, rows)?))
            })
            .collect()
    }

    /// One chunk through the encoder and the `selected` heads, as host rows per head.
    fn chunk_rows(&self, batch: &TokenBatch, selected: &[usize]) -> Result<Vec<Vec<RowOutput>>> {
        let read = |outputs: Vec<HeadBatch>| host_rows(outputs, batch);
        #[cfg(feature = "cuda")]
        if let Some(rows) = self.replay_graph(batch, selected, read)? {
            return Ok(rows);
        }
        let (ids, mask) = self.batch_tensors(batch)?;
        read(self.forward_heads(&ids, &mask, selected)?)
    }

    /// `read` over the `selected` heads' outputs for `batch` replayed from a CUDA graph (valid
    /// only inside `read`, see cuda_graphs.rs). None: no graphs, not a graph shape, or a large
    /// shape not recorded yet; the caller runs the batch eagerly.
    #[cfg(feature = "cuda")]
    fn replay_graph<R>(
        &self,
        batch: &TokenBatch,
        selected: &[usize],
        read: impl FnOnce(Vec<HeadBatch>) -> Result<R>,
    ) -> Result<Option<R>> {
        let Some(graphs) = &self.graphs else { return Ok(None) };
        let forward = |ids: &Tensor, mask: &Tensor| self.forward_heads(ids, mask, selected);
        let (pad, max_length) = (self.tokenizer.pad_id(), self.max_length());
        graphs.run(&self.device, batch, selected, pad, max_length, forward, read)
    }

    /// Inputs of more than a few texts on a GPU: chunks are queued back to back, each read back
    /// asynchronously (readback.rs) once the next is queued, and large inputs are tokenized slice
    /// by slice on a helper thread while the GPU runs the slice before.
    ///
    /// Texts are ordered by length in characters, so a slice holds similar lengths before any is
    /// tokenized; each slice is cut into length-sorted chunks as usual. With the fast WordPiece
    /// path (wordpiece.rs) slices are `FAST_PIPELINE_SLICE` texts (one chunk each; the GPU is as
    /// efficient at 64 rows as at 256, and only the first slice's tokenization is visible);
    /// otherwise slices of `PIPELINE_SLICE` texts hide the slower tokenizer behind the GPU.
    fn run_pipelined(
        &self,
        texts: &[String],
        selected: &[usize],
        outputs: &mut [Vec<Option<RowOutput>>],
        offsets: bool,
    ) -> Result<()> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let slice_len =
            if self.tokenizer.has_fast_path() && !offsets { FAST_PIPELINE_SLICE } else { PIPELINE_SLICE };
        let slices: Vec<&[usize]> = order.chunks(slice_len).collect();
        let tokenize = |slice: &[usize]| -> Result<Vec<Chunk>> {
            let members: Vec<String> = slice.iter().map(|&i| texts[i].clone()).collect();
            let mut chunks = length_sorted_chunks(&self.tokenizer, &members, self.chunk_limits(), offsets)?;
            for chunk in &mut chunks {
                chunk.indices = chunk.indices.iter().map(|&j| slice[j]).collect();
            }
            Ok(chunks)
        };
        let first = tokenize(slices[0])?;
        std::thread::scope(|scope| -> Result<()> {
            let (sender, receiver) = std::sync::mpsc::sync_channel::<Result<Vec<Chunk>>>(1);
            if slices.len() > 1 {
                let rest = &slices[1..];
                let tokenize = &tokenize;
                scope.spawn(move || {
                    for slice in rest {
                        let chunks = tokenize(slice);
                        let failed = chunks.is_err();
                        if sender.send(chunks).is_err() || failed {
                            break;
                        }
                    }
                });
            } else {
                drop(sender);
            }
            let _device = exclusive(&self.device);
            let mut in_flight: Option<(Chunk, readback::InFlight)> = None;
            for chunks in std::iter::once(Ok(first)).chain(receiver.iter()) {
                for chunk in chunks? {
                    match self.start_chunk(&chunk.batch, selected)? {
                        Started::Read(rows) => store(outputs, &chunk.indices, rows),
                        Started::Queued(flight) => {
                            if let Some((done, flight)) = in_flight.replace((chunk, flight)) {
                                store(outputs, &done.indices, self.readback.finish(flight, &done.batch)?);
                            }
                        }
                    }
                }
            }
            if let Some((done, flight)) = in_flight.take() {
                store(outputs, &done.indices, self.readback.finish(flight, &done.batch)?);
            }
            Ok(())
        })
    }

    /// Queue one chunk of a pipelined call: its forward pass and, where it can, the asynchronous
    /// copy of its outputs, so the next chunk is queued before this one is waited for.
    ///
    /// A chunk replayed from a CUDA graph leaves its outputs in the graph's memory, which the
    /// graph's next launch (often the very next chunk: slices of one shape) overwrites. A copy
    /// queued on the stream before that launch still reads them, because the stream runs its work
    /// in order; so the chunk stays in flight when every output is copied that way at `start`,
    /// and is read at once otherwise (token heads are read in `finish`, too late).
    fn start_chunk(&self, batch: &TokenBatch, selected: &[usize]) -> Result<Started> {
        #[cfg(feature = "cuda")]
        {
            let read = |outputs: Vec<HeadBatch>| {
                if readback::copies_all(&self.device, &outputs) {
                    Ok(Started::Queued(self.readback.start(&self.device, outputs)?))
                } else {
                    Ok(Started::Read(host_rows(outputs, batch)?))
                }
            };
            if let Some(started) = self.replay_graph(batch, selected, read)? {
                return Ok(started);
            }
        }
        let (ids, mask) = self.batch_tensors(batch)?;
        let heads = self.forward_heads(&ids, &mask, selected)?;
        Ok(Started::Queued(self.readback.start(&self.device, heads)?))
    }

    /// The `selected` heads' outputs from one encoder pass: the trunk runs once, each branch those
    /// heads read runs from where it leaves the trunk, and pooled vectors are shared per source.
    fn forward_heads(&self, ids: &Tensor, mask: &Tensor, selected: &[usize]) -> Result<Vec<HeadBatch>> {
        let mut sources: Vec<Option<usize>> = selected.iter().map(|&i| self.heads[i].branch).collect();
        sources.sort_unstable();
        sources.dedup();
        let hidden = hidden_states(&self.encoder, &self.branches, ids, mask, &sources)?;
        let mut views: Vec<PooledViews> = sources.iter().map(|_| PooledViews::default()).collect();
        selected
            .iter()
            .map(|&i| {
                let BundleHead { head, branch, .. } = &self.heads[i];
                let source = sources
                    .binary_search(branch)
                    .map_err(|_| Error::Inference("a head's source was not run".into()))?;
                head.forward(&hidden[source], mask, &mut views[source])
            })
            .collect()
    }

    fn batch_tensors(&self, batch: &TokenBatch) -> Result<(Tensor, Tensor)> {
        let rows = batch.texts.len();
        let ids = Tensor::from_slice(&batch.ids, (rows, batch.seq_len), &self.device)?;
        let mask = Tensor::from_slice(&batch.mask, (rows, batch.seq_len), &self.device)?;
        Ok((ids, mask))
    }
}

impl Bundle {
    /// Each loaded head's kind ("embedding", "sequence" or "token"), in load order.
    pub fn head_kinds(&self) -> Vec<(String, &'static str)> {
        self.heads.iter().map(|head| (head.name.clone(), head.head.kind().name())).collect()
    }
}
