//! CUDA graphs for small batches: a forward pass recorded once per padded shape, then replayed
//! with one launch.
//!
//! Large batches (9 to 256 texts) are recorded too, once a padded shape has been seen
//! `LARGE_AFTER` times (a recording costs an eager pass and a capture, and a server sees many
//! shapes): replaying removes the host's launch work and the GPU's idle gaps between kernels
//! (0.4 ms of a 3.9 ms BERT-base pass at 64 x 128 tokens on an H200). Rows are padded to a
//! multiple of 16 there; at most `MAX_LARGE` such graphs are recorded (the first shapes to be
//! seen often enough; later ones run eagerly, so varied traffic cannot keep re-recording).
//!
//! The eager pass before each capture also tunes the products' algorithms for that shape
//! (`cuda_lt::with_tuning`): a recorded shape is replayed many times.
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
//! next launch (instantiated with AUTO_FREE_ON_LAUNCH), so results are read back, or their copy
//! queued on the stream ahead of that launch, under the same lock that launches. Anything a
//! capture rejects turns graphs off for that bundle and the pass runs eagerly: slower, never wrong.
//! `VSR_CUDA_GRAPHS=0` turns them off. BERT-family encoders only (bundle.rs decides).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use candle_core::cuda_backend::cudarc::driver::sys;
use candle_core::cuda_backend::cudarc::driver::CudaGraph;
use candle_core::{Device, Tensor};

use crate::error::{Error, Result};
use crate::model::heads::HeadBatch;
use crate::tokenize::TokenBatch;

/// Batches up to this many texts are replayed from graphs as soon as seen.
const MAX_ROWS: usize = 8;
/// ... and up to this many padded tokens (bounds the memory each graph keeps).
const MAX_TOKENS: usize = 4096;
/// Larger batches: up to this many texts and padded tokens, rows padded to a multiple of
/// `LARGE_ROW_BUCKET`, recorded on the `LARGE_AFTER`th sighting, at most `MAX_LARGE` kept.
const MAX_LARGE_ROWS: usize = 256;
const MAX_LARGE_TOKENS: usize = 32_768;
const LARGE_ROW_BUCKET: usize = 16;
const LARGE_AFTER: u32 = 3;
const MAX_LARGE: usize = 8;
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
    /// Large shapes' sightings before they are recorded.
    sightings: Mutex<HashMap<Key, u32>>,
    enabled: AtomicBool,
    large_enabled: AtomicBool,
}

/// The padded (rows, seq) a batch of `rows` texts of `seq` tokens is replayed at, if any.
fn bucket(rows: usize, seq: usize, max_length: usize) -> Option<(usize, usize)> {
    let seq = seq.div_ceil(SEQ_BUCKET).saturating_mul(SEQ_BUCKET).min(max_length).max(seq);
    if rows <= MAX_ROWS {
        let rows = rows.next_power_of_two();
        return (rows * seq <= MAX_TOKENS).then_some((rows, seq));
    }
    let rows = rows.div_ceil(LARGE_ROW_BUCKET) * LARGE_ROW_BUCKET;
    (rows <= MAX_LARGE_ROWS && rows * seq <= MAX_LARGE_TOKENS).then_some((rows, seq))
}

fn is_large(rows: usize) -> bool {
    rows > MAX_ROWS
}

impl GraphCache {
    pub fn new(device: &Device) -> Option<Self> {
        let wanted = std::env::var("VSR_CUDA_GRAPHS").map(|v| v != "0").unwrap_or(true);
        let large = std::env::var("VSR_CUDA_GRAPHS_LARGE").map(|v| v != "0").unwrap_or(true);
        (device.is_cuda() && wanted).then(|| GraphCache {
            entries: Mutex::new(HashMap::new()),
            sightings: Mutex::new(HashMap::new()),
            enabled: AtomicBool::new(true),
            large_enabled: AtomicBool::new(large),
        })
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
        let large = is_large(real_rows);
        let flag = if large { &self.large_enabled } else { &self.enabled };
        if !flag.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let key = Key { rows, seq, heads: heads.to_vec() };
        let mut entries =
            self.entries.lock().map_err(|_| Error::Inference("graph cache lock poisoned".into()))?;
        if large && !entries.contains_key(&key) {
            let mut sightings =
                self.sightings.lock().map_err(|_| Error::Inference("graph cache lock poisoned".into()))?;
            if sightings.len() > 4 * MAX_GRAPHS {
                sightings.clear();
            }
            let seen = sightings.entry(key.clone()).or_insert(0);
            *seen += 1;
            if *seen < LARGE_AFTER {
                return Ok(None);
            }
            sightings.remove(&key);
        }
        let (ids, mask) = padded(batch, rows, seq, pad_id);
        if !entries.contains_key(&key) {
            if large && entries.keys().filter(|k| is_large(k.rows)).count() >= MAX_LARGE {
                return Ok(None);
            }
            if entries.len() >= MAX_GRAPHS {
                entries.retain(|k, _| is_large(k.rows));
            }
            match record(device, &ids, &mask, (rows, seq), &forward) {
                Ok(entry) => entries.insert(key.clone(), entry),
                Err(_) => {
                    // Whatever the capture rejected will be rejected again: stay eager (for large
                    // shapes only, if it was one: memory may have run short there).
                    flag.store(false, Ordering::Relaxed);
                    return Ok(None);
                }
            };
        } else {
            // Straight into the graph's input buffers: no allocation, no copy kernel.
            let entry = &entries[&key];
            entry.ids.inplace_op1(&Upload(&ids))?;
            entry.mask.inplace_op1(&Upload(&mask))?;
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

/// Copies host data into a (contiguous, u32) device tensor's own buffer, in stream order.
struct Upload<'a>(&'a [u32]);

impl candle_core::InplaceOp1 for Upload<'_> {
    fn name(&self) -> &'static str {
        "upload"
    }

    fn cpu_fwd(&self, _: &mut candle_core::CpuStorage, _: &candle_core::Layout) -> candle_core::Result<()> {
        candle_core::bail!("upload: CUDA only")
    }

    fn cuda_fwd(
        &self,
        storage: &mut candle_core::cuda_backend::CudaStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        if !layout.is_contiguous() || layout.shape().elem_count() != self.0.len() {
            candle_core::bail!("upload: expects a contiguous tensor of {} elements", self.0.len());
        }
        let stream = storage.device.cuda_stream();
        let start = layout.start_offset();
        let slice = storage.as_cuda_slice_mut::<u32>()?;
        let mut target = slice.slice_mut(start..start + self.0.len());
        stream
            .memcpy_htod(self.0, &mut target)
            .map_err(|e| candle_core::Error::Cuda(format!("upload: {e:?}").into()))
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
    crate::model::cuda_lt::with_tuning(|| forward(&ids, &mask))?;
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
        assert_eq!(bucket(8, 600, 1024), None);
        assert_eq!(bucket(9, 16, 512), Some((16, 16)));
        assert_eq!(bucket(64, 128, 512), Some((64, 128)));
        assert_eq!(bucket(250, 128, 512), Some((256, 128)));
        assert_eq!(bucket(256, 130, 512), None);
        assert_eq!(bucket(300, 16, 512), None);
    }
}
