//! CUDA graphs for small batches: a forward pass recorded once per padded shape, then replayed
//! with one launch.
//!
//! A lone request is bound by launching ~160 kernels, not by the GPU (0.5 ms of GPU work for
//! BERT-base at 128 tokens; benches/results/profile_gpu_h200_fused.log). Replaying a recorded graph
//! launches them all at once. Shapes are padded to buckets (rows to 1, 2, 4 or 8; tokens to a
//! multiple of 16) so a few graphs serve every small request; padded rows and tokens are masked
//! and never read back. Larger batches keep GPU-bound eager launches.
//!
//! Recording: inputs live in tensors owned by the graph entry; one eager pass fills candle's
//! cache of kernel parameters (candle uploads layout parameters per op, which a capture may not),
//! then the same pass is captured. Outputs stay in graph-owned memory, valid until the graph's
//! next launch (instantiated with AUTO_FREE_ON_LAUNCH), so results are read back under the same
//! lock that launches. Anything a capture rejects turns graphs off for that bundle and the pass
//! runs eagerly: slower, never wrong. `VSR_CUDA_GRAPHS=0` turns them off. BERT-family encoders
//! only (bundle.rs decides).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use candle_core::cuda_backend::cudarc::driver::sys;
use candle_core::cuda_backend::cudarc::driver::CudaGraph;
use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::model::heads::HeadBatch;
use crate::tokenize::TokenBatch;

/// Batches up to this many texts are replayed from graphs.
const MAX_ROWS: usize = 8;
/// ... and up to this many padded tokens (bounds the memory each graph keeps).
const MAX_TOKENS: usize = 4096;
/// Token counts are padded up to a multiple of this.
const SEQ_BUCKET: usize = 16;
/// Past this many recorded shapes the cache starts over.
const MAX_GRAPHS: usize = 48;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    rows: usize,
    seq: usize,
    heads: Vec<usize>,
}

struct Entry {
    graph: CudaGraph,
    ids: Tensor,
    mask: Tensor,
    outputs: Vec<HeadBatch>,
}

// SAFETY: a CudaGraph is used only under the `GraphCache::entries` mutex (its docs ask callers to
// serialise access); the tensors are Send.
unsafe impl Send for Entry {}

pub struct GraphCache {
    entries: Mutex<HashMap<Key, Entry>>,
    enabled: AtomicBool,
}

/// The padded (rows, seq) a batch of `rows` texts of `seq` tokens is replayed at, if any.
fn bucket(rows: usize, seq: usize, max_length: usize) -> Option<(usize, usize)> {
    let rows = rows.next_power_of_two();
    let seq = seq.div_ceil(SEQ_BUCKET).saturating_mul(SEQ_BUCKET).min(max_length).max(seq);
    (rows <= MAX_ROWS && rows * seq <= MAX_TOKENS).then_some((rows, seq))
}

impl GraphCache {
    pub fn new(device: &Device) -> Option<Self> {
        let wanted = std::env::var("VSR_CUDA_GRAPHS").map(|v| v != "0").unwrap_or(true);
        (device.is_cuda() && wanted)
            .then(|| GraphCache { entries: Mutex::new(HashMap::new()), enabled: AtomicBool::new(true) })
    }

    /// Runs `forward` (ids, mask -> head outputs) for `batch` from a graph and hands the outputs,
    /// cut to the batch's real rows, to `read` while they are valid. None: not a graph-sized
    /// batch, or graphs are off; the caller runs eagerly.
    #[allow(clippy::too_many_arguments)]
    pub fn run<R>(
        &self,
        device: &Device,
        batch: &TokenBatch,
        heads: &[usize],
        pad_id: u32,
        max_length: usize,
        forward: impl Fn(&Tensor, &Tensor) -> Result<Vec<HeadBatch>>,
        read: impl FnOnce(Vec<HeadBatch>) -> Result<R>,
    ) -> Result<Option<R>> {
        let real_rows = batch.texts.len();
        let Some((rows, seq)) = bucket(real_rows, batch.seq_len, max_length) else { return Ok(None) };
        if !self.enabled.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let (ids, mask) = padded(batch, rows, seq, pad_id);
        let key = Key { rows, seq, heads: heads.to_vec() };
        let mut entries =
            self.entries.lock().map_err(|_| Error::Inference("graph cache lock poisoned".into()))?;
        if !entries.contains_key(&key) {
            if entries.len() >= MAX_GRAPHS {
                entries.clear();
            }
            match record(device, &ids, &mask, (rows, seq), &forward) {
                Ok(entry) => entries.insert(key.clone(), entry),
                Err(_) => {
                    // Whatever the capture rejected will be rejected again: stay eager.
                    self.enabled.store(false, Ordering::Relaxed);
                    return Ok(None);
                }
            };
        } else {
            let entry = &entries[&key];
            entry.ids.slice_set(&Tensor::from_vec(ids, (rows, seq), device)?, 0, 0)?;
            entry.mask.slice_set(&Tensor::from_vec(mask, (rows, seq), device)?, 0, 0)?;
        }
        let entry = &entries[&key];
        entry.graph.launch().map_err(|e| Error::Inference(format!("CUDA graph launch: {e:?}")))?;
        let outputs = entry
            .outputs
            .iter()
            .map(|output| {
                Ok(match output {
                    HeadBatch::Rows(t) => HeadBatch::Rows(t.narrow(0, 0, real_rows)?),
                    HeadBatch::Tokens(t) => HeadBatch::Tokens(t.narrow(0, 0, real_rows)?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        read(outputs).map(Some)
    }
}

/// The batch's ids and mask padded to (rows, seq): pad tokens, mask 0.
fn padded(batch: &TokenBatch, rows: usize, seq: usize, pad_id: u32) -> (Vec<u32>, Vec<u32>) {
    let mut ids = vec![pad_id; rows * seq];
    let mut mask = vec![0u32; rows * seq];
    for row in 0..batch.texts.len() {
        let from = row * batch.seq_len;
        ids[row * seq..row * seq + batch.seq_len].copy_from_slice(&batch.ids[from..from + batch.seq_len]);
        mask[row * seq..row * seq + batch.seq_len].copy_from_slice(&batch.mask[from..from + batch.seq_len]);
    }
    (ids, mask)
}

fn record(
    device: &Device,
    ids: &[u32],
    mask: &[u32],
    shape: (usize, usize),
    forward: &impl Fn(&Tensor, &Tensor) -> Result<Vec<HeadBatch>>,
) -> Result<Entry> {
    let cuda = device.as_cuda_device()?;
    // Outside the parameter cache: these buffers are rewritten before every replay, so they must
    // not be the cache's shared copies of equal data.
    let ids = Tensor::from_slice(ids, shape, device)?;
    let mask = Tensor::from_slice(mask, shape, device)?;
    let _cache = cuda.enable_cuda_graph_htod_cache();
    forward(&ids, &mask)?;
    let stream = cuda.cuda_stream();
    stream.synchronize().map_err(|e| Error::Inference(format!("CUDA synchronize: {e:?}")))?;
    stream
        .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
        .map_err(|e| Error::Inference(format!("CUDA graph capture: {e:?}")))?;
    let captured = forward(&ids, &mask);
    // End the capture whatever happened, or the stream stays in capture mode.
    let graph =
        stream.end_capture(sys::CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH);
    let outputs = captured?;
    let graph = graph
        .map_err(|e| Error::Inference(format!("CUDA graph instantiate: {e:?}")))?
        .ok_or_else(|| Error::Inference("CUDA graph capture recorded nothing".into()))?;
    Ok(Entry { graph, ids, mask, outputs })
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn pads_to_buckets_within_limits() {
        assert_eq!(bucket(1, 7, 512), Some((1, 16)));
        assert_eq!(bucket(3, 128, 512), Some((4, 128)));
        assert_eq!(bucket(1, 500, 510), Some((1, 510)));
        assert_eq!(bucket(8, 512, 512), Some((8, 512)));
        assert_eq!(bucket(9, 16, 512), None);
        assert_eq!(bucket(8, 600, 1024), None);
    }
}
