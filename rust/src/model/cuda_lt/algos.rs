//! How cuBLASLt's algorithms are chosen for a product (`mod.rs` plans and runs them): per
//! power-of-two bucket of row counts, asked of the heuristic once per bucket, and timed on the
//! real operands for shapes recorded into CUDA graphs.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use candle_core::cuda_backend::cudarc::cublaslt::{result as lt, sys};
use candle_core::cuda_backend::cudarc::driver::CudaStream;

use super::{lt_err, Lt, Plan, PlanKey, WORKSPACE_BYTES};

/// Candidates asked of cuBLASLt's heuristic for a shape being tuned (an untuned plan asks for
/// one: more made the heuristic query itself slow, ~25 ms on the first request of a new shape).
pub(super) const CANDIDATES: i32 = 8;
/// Products per candidate when timing them.
const TUNING_REPEATS: usize = 8;
/// The smallest bucket: fewer rows share its algorithm.
const MIN_BUCKET_ROWS: usize = 16;

/// Whether row counts share their bucket's algorithm (`VSR_GEMM_BUCKETS=0`: every row count
/// asks the heuristic for its own, and the load runs no product warm-up).
fn buckets_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("VSR_GEMM_BUCKETS").map(|v| v != "0").unwrap_or(true))
}

/// The bucket of row counts whose products share an algorithm: the next power of two.
fn row_bucket(rows: usize) -> usize {
    if !buckets_enabled() {
        return rows;
    }
    rows.next_power_of_two().max(MIN_BUCKET_ROWS)
}

/// Every bucket up to `max_rows` rows, smallest first (what `Bundle::warm_up` runs); none when
/// buckets are off.
pub(crate) fn row_buckets(max_rows: usize) -> Vec<usize> {
    if !buckets_enabled() {
        return Vec::new();
    }
    std::iter::successors(Some(MIN_BUCKET_ROWS), |&rows| Some(rows * 2))
        .take_while(|&rows| rows <= max_rows.next_power_of_two())
        .collect()
}

/// A bucket's algorithms from the heuristic at the bucket's row count: the best first, then the
/// candidates tuning times (`asked` of them were requested).
pub(super) struct BucketAlgos {
    pub(super) algos: Vec<sys::cublasLtMatmulAlgo_t>,
    pub(super) asked: i32,
}

// SAFETY: plain algorithm descriptions (byte arrays), used under the plans mutex.
unsafe impl Send for BucketAlgos {}

impl Lt {
    /// The heuristic's best `candidates` algorithms for the product `key` describes.
    pub(super) fn heuristic(
        &self,
        key: PlanKey,
        candidates: i32,
    ) -> candle_core::Result<Vec<sys::cublasLtMatmulAlgo_t>> {
        let plan = self.descriptors(key)?;
        self.ask(&plan, candidates)
    }

    /// The heuristic's best `candidates` algorithms for `plan`'s descriptors, within the workspace.
    fn ask(&self, plan: &Plan, candidates: i32) -> candle_core::Result<Vec<sys::cublasLtMatmulAlgo_t>> {
        let err = |e| lt_err("heuristic", e);
        let pref = lt::create_matmul_pref().map_err(err)?;
        let workspace = WORKSPACE_BYTES as u64;
        // SAFETY: live descriptors; the preference attribute is the u64 cuBLASLt documents.
        let found = unsafe {
            lt::set_matmul_pref_attribute(
                pref,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                (&workspace as *const u64).cast(),
                8,
            )
            .and_then(|_| {
                let mut results: Vec<sys::cublasLtMatmulHeuristicResult_t> =
                    vec![std::mem::zeroed(); candidates.max(1) as usize];
                let mut count = 0i32;
                sys::cublasLtMatmulAlgoGetHeuristic(
                    self.handle,
                    plan.desc,
                    plan.weight,
                    plan.input,
                    plan.output,
                    plan.output,
                    pref,
                    candidates.max(1),
                    results.as_mut_ptr(),
                    &mut count,
                )
                .result()?;
                results.truncate(count.max(0) as usize);
                results.retain(|r| {
                    r.state == sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS
                        && r.workspaceSize <= WORKSPACE_BYTES
                });
                if results.is_empty() {
                    return Err(candle_core::cuda_backend::cudarc::cublaslt::result::CublasError(
                        sys::cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED,
                    ));
                }
                Ok(results)
            })
        };
        // SAFETY: created above, destroyed once.
        let _ = unsafe { lt::destroy_matmul_pref(pref) };
        Ok(found.map_err(err)?.iter().map(|r| r.algo).collect())
    }

    /// `key`'s bucket's algorithms, at least `wanted` of them asked of the heuristic (at the
    /// bucket's row count) the first time they are needed.
    pub(super) fn bucket_algos(
        &self,
        by_bucket: &mut HashMap<PlanKey, BucketAlgos>,
        key: PlanKey,
        wanted: i32,
    ) -> candle_core::Result<Vec<sys::cublasLtMatmulAlgo_t>> {
        let (dtype, out_dim, rows, in_dim, gelu) = key;
        let bucket = (dtype, out_dim, row_bucket(rows), in_dim, gelu);
        if by_bucket.get(&bucket).is_none_or(|known| known.asked < wanted) {
            let algos = self.heuristic(bucket, wanted)?;
            by_bucket.insert(bucket, BucketAlgos { algos, asked: wanted });
        }
        let known = by_bucket.get(&bucket).ok_or_else(|| lt_err("plans", "missing bucket"))?;
        Ok(known.algos.clone())
    }
}

/// The fastest of `candidates` for one shape, timed with CUDA events on the real operands (the
/// product's output is rewritten by the call that follows). cuBLASLt's heuristic ranks by a model
/// of the GPU, not by measurement. None: keep the heuristic's first, as when the stream is being
/// captured into a graph (nothing may synchronise then), when there is one candidate, or with
/// `VSR_GEMM_TUNING=0`.
pub(super) fn tune(
    stream: &Arc<CudaStream>,
    candidates: &[sys::cublasLtMatmulAlgo_t],
    run: impl Fn(&sys::cublasLtMatmulAlgo_t) -> std::result::Result<(), lt::CublasError>,
) -> Option<sys::cublasLtMatmulAlgo_t> {
    use candle_core::cuda_backend::cudarc::driver::sys as driver;

    if candidates.len() < 2 || std::env::var("VSR_GEMM_TUNING").is_ok_and(|v| v == "0") {
        return None;
    }
    let idle = driver::CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE;
    if stream.capture_status().ok()? != idle {
        return None;
    }
    let timing = Some(driver::CUevent_flags::CU_EVENT_DEFAULT);
    let mut best: Option<(f32, sys::cublasLtMatmulAlgo_t)> = None;
    for algo in candidates {
        // One untimed call (a kernel's first launch loads it), then the timed ones.
        if run(algo).is_err() {
            continue;
        }
        let start = stream.record_event(timing).ok()?;
        if (0..TUNING_REPEATS).any(|_| run(algo).is_err()) {
            continue;
        }
        let end = stream.record_event(timing).ok()?;
        let elapsed = start.elapsed_ms(&end).ok()?;
        if best.is_none_or(|(fastest, _)| elapsed < fastest) {
            best = Some((elapsed, *algo));
        }
    }
    best.map(|(_, algo)| algo)
}
