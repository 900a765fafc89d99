//! float32 matrix products for the CPU encoder path: `C = A · Wᵀ (+ bias)` with the weight packed
//! once, at load, into panels of `NR` output columns (candle's gemm packs its right-hand side on
//! every call, which cost more than the arithmetic for the few rows of a lone request).
//!
//! The AVX-512 kernel keeps an `MR x NR` block of C in 16 registers and streams one packed panel;
//! other CPUs run a portable kernel the compiler vectorises for AVX2 + FMA (or whatever it has).
//! While a chunk of a panel is in L1, every row tile also prefetches a share of the next chunk
//! into L2: with only the first tile reading memory, memory sat idle while the others computed,
//! and a pass over weights that miss L3 (BERT-base, 340 MB) ran 10-25% slower at 16-64 rows.

use super::ops::gelu as gelu_in_place;
use super::pool::{for_each_part, SendPtr};
use super::Isa;

mod kernels;
mod packed;
#[cfg(target_arch = "x86_64")]
use kernels::avx512;
use kernels::portable;
pub(crate) use packed::Packed;
#[cfg(test)]
pub(crate) use packed::HUGE;

/// Output columns per packed panel: two AVX-512 registers.
pub(crate) const NR: usize = 32;
/// Rows of C per kernel call.
const MR: usize = 8;
/// Rows of A per block: the block stays in L2 while every panel passes over it.
const MC: usize = 128;
/// Rows of C per AVX-512 kernel call at most: 24 accumulators beside two panel registers and the
/// broadcast value. Blocks are cut into tiles of equal height up to this (18 rows: 9 + 9, not
/// 8 + 8 + 2, whose last tile streams the panel again for two rows).
const MR_WIDE: usize = 12;
/// Depth per pass over a panel: `KC x NR` floats (32 KiB) stay in L1 while the block's rows use
/// them; a whole panel of a 1536-deep product (192 KiB) did not, and the kernel waited on it.
const KC: usize = 256;

/// Whether kernels prefetch the panel (off only to measure what it brings, in `speed.rs`).
pub(crate) static PREFETCH: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether every row tile prefetches its share of the next chunk of the weight stream into L2
/// (off only to measure what it brings, in `speed.rs`).
pub(crate) static STREAM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether AVX-512 blocks are cut into equal tiles of up to `MR_WIDE` rows (off only to measure
/// what it brings, in `speed.rs`: then tiles of `MR` rows and a remainder).
pub(crate) static BALANCED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// What is applied to each output after the bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Activation {
    Identity,
    /// The exact GELU, applied to each tile of C as its last depth chunk is stored, while the
    /// tile is in L1 and on the threads that computed it (a separate pass after the product ran
    /// on one thread and read the whole output from memory again).
    Gelu,
}

/// `c[r * ldc + j] = act(sum_k a[r * lda + k] * W[j][k] + bias[j])` for `r < m`, `j < w.n()`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    isa: Isa,
    a: &[f32],
    lda: usize,
    m: usize,
    w: &Packed,
    bias: Option<&[f32]>,
    activation: Activation,
    c: &mut [f32],
    ldc: usize,
    threads: usize,
) {
    if m == 0 || w.n == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * lda + w.k && c.len() >= (m - 1) * ldc + w.n);
    assert!(bias.is_none_or(|b| b.len() >= w.n));
    // SAFETY: the bounds of A and C were checked above.
    unsafe { matmul_raw(isa, a.as_ptr(), lda, m, w, bias, activation, SendPtr(c.as_mut_ptr()), ldc, threads) }
}

/// `matmul` with C as a pointer, for callers that write interleaved regions of one buffer from
/// several threads (attention heads).
///
/// `threads > 1` splits the work: by columns when there are few rows (each thread streams half of
/// the weight), by row blocks otherwise. Products below `PARALLEL_MACS` stay on the caller's
/// thread: waking a second one costs more than it saves.
///
/// # Safety
/// `a` must hold `(m - 1) * lda + w.k()` values, `c` `(m - 1) * ldc + w.n()`, `bias` `w.n()`, and
/// no other thread may touch the written part of C meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul_raw(
    isa: Isa,
    a: *const f32,
    lda: usize,
    m: usize,
    w: &Packed,
    bias: Option<&[f32]>,
    activation: Activation,
    c: SendPtr<f32>,
    ldc: usize,
    threads: usize,
) {
    if m == 0 || w.n == 0 {
        return;
    }
    let a_ptr = SendPtr(a as *mut f32);
    let macs = m * w.n * w.k;
    let parts = if threads > 1 && macs >= super::PARALLEL_MACS { threads } else { 1 };
    let panels = w.panels();
    if m >= MC * parts || panels < parts {
        let blocks = m.div_ceil(MC);
        for_each_part(parts, blocks, |range| {
            for block in range {
                let rows = (block * MC)..((block + 1) * MC).min(m);
                // SAFETY: row blocks are disjoint, and in bounds (the caller's contract).
                unsafe { run_block(isa, a_ptr, lda, rows, w, 0..panels, bias, c, ldc, activation) };
            }
        });
    } else {
        for_each_part(parts, panels, |range| {
            for block in 0..m.div_ceil(MC) {
                let rows = (block * MC)..((block + 1) * MC).min(m);
                // SAFETY: panel ranges write disjoint columns of C, in bounds.
                unsafe { run_block(isa, a_ptr, lda, rows, w, range.clone(), bias, c, ldc, activation) };
            }
        });
    }
}

/// One block of rows against a range of panels.
#[allow(clippy::too_many_arguments)]
unsafe fn run_block(
    isa: Isa,
    a: SendPtr<f32>,
    lda: usize,
    rows: std::ops::Range<usize>,
    w: &Packed,
    panels: std::ops::Range<usize>,
    bias: Option<&[f32]>,
    c: SendPtr<f32>,
    ldc: usize,
    activation: Activation,
) {
    let k = w.k;
    // Row tiles: equal heights up to MR_WIDE on AVX-512, else MR at a time.
    let balanced = isa == Isa::Avx512 && BALANCED.load(std::sync::atomic::Ordering::Relaxed);
    let tiles = rows.len().div_ceil(if balanced { MR_WIDE } else { MR });
    let prefetch = PREFETCH.load(std::sync::atomic::Ordering::Relaxed);
    let stream = prefetch && isa == Isa::Avx512 && STREAM.load(std::sync::atomic::Ordering::Relaxed);
    let end = panels.end;
    for panel in panels {
        let start = panel * NR;
        let cols = NR.min(w.n - start);
        let mut bias_panel = [0.0f32; NR];
        if let Some(bias) = bias {
            bias_panel[..cols].copy_from_slice(&bias[start..start + cols]);
        }
        let mut depth = 0;
        while depth < k {
            let kc = KC.min(k - depth);
            let b = w.data.as_ptr().add(panel * k * NR + depth * NR);
            // The panels are one contiguous stream: the next chunk follows this one, unless this
            // is the range's last (another thread's panels, or the end).
            let last = panel + 1 == end && depth + kc >= k;
            let next_depth = if depth + kc < k { KC.min(k - depth - kc) } else { KC.min(k) };
            let ahead = if stream && !last { next_depth * NR * 4 / 64 } else { 0 };
            let mut row = rows.start;
            for tile_index in 0..tiles {
                // The first `rows % tiles` tiles of a balanced cut take one row more.
                let r = if balanced {
                    (rows.len() + tiles - 1 - tile_index) / tiles
                } else {
                    MR.min(rows.end - row)
                };
                let tile = Tile {
                    k: kc,
                    a: a.get().add(row * lda + depth),
                    lda,
                    b,
                    c: c.get().add(row * ldc + start),
                    ldc,
                    cols,
                    bias: &bias_panel,
                    accumulate: depth > 0,
                    // The block's first rows meet the chunk in L2 (or memory); the rest find it in L1.
                    prefetch: row == rows.start && prefetch,
                    next: (b.add(kc * NR) as *const u8).add(tile_index * ahead / tiles * 64),
                    next_lines: (tile_index + 1) * ahead / tiles - tile_index * ahead / tiles,
                };
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => avx512::dispatch(r, &tile),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => portable::dispatch_avx2(r, &tile),
                    _ => portable::dispatch(r, &tile),
                }
                if activation == Activation::Gelu && depth + kc >= k {
                    for out_row in row..row + r {
                        // SAFETY: this tile's finished outputs, written by no other thread.
                        gelu_in_place(
                            isa,
                            std::slice::from_raw_parts_mut(c.get().add(out_row * ldc + start), cols),
                        );
                    }
                }
                row += r;
            }
            depth += kc;
        }
    }
}

/// One kernel call's operands: `r` rows of A from `a`, one packed panel `b`, C at `c`.
struct Tile<'a> {
    k: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    bias: &'a [f32; NR],
    /// Add to C (a later depth block) instead of starting from the bias.
    accumulate: bool,
    /// Prefetch the panel ahead of the loads (the first row tile over a weight not in cache).
    prefetch: bool,
    /// Cache lines of the weight's next chunk this tile brings into L2 while it computes, so
    /// memory keeps streaming while later tiles reuse the chunk from L1.
    next: *const u8,
    next_lines: usize,
}

impl Tile<'_> {
    /// The starting values of row `row`: the bias, or what earlier depth blocks left in C.
    unsafe fn start(&self, row: usize) -> [f32; NR] {
        if !self.accumulate {
            return *self.bias;
        }
        let mut values = [0.0f32; NR];
        std::ptr::copy_nonoverlapping(self.c.add(row * self.ldc), values.as_mut_ptr(), self.cols);
        values
    }

    /// Write a finished row of the block (only the panel's valid columns).
    unsafe fn store(&self, row: usize, values: &[f32; NR]) {
        std::ptr::copy_nonoverlapping(values.as_ptr(), self.c.add(row * self.ldc), self.cols);
    }
}

impl Clone for Tile<'_> {
    fn clone(&self) -> Self {
        *self
    }
}
impl Copy for Tile<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_values as values;

    fn naive(a: &[f32], m: usize, k: usize, w: &[f32], n: usize, bias: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                let dot: f64 = (0..k).map(|d| a[r * k + d] as f64 * w[j * k + d] as f64).sum();
                c[r * n + j] = dot as f32 + bias[j];
            }
        }
        c
    }

    #[test]
    fn the_fused_gelu_equals_the_product_then_a_gelu_pass() {
        // Depths past one chunk (KC) and panels narrower than NR: the GELU must land once, on
        // finished outputs only, whatever the split between threads.
        for isa in Isa::available() {
            for &(m, n, k) in &[(1, 40, 300), (18, 70, 600), (130, 96, 513), (300, 33, 40)] {
                let (a, w, bias) = (values(m * k, 4), values(n * k, 5), values(n, 6));
                let packed = Packed::from_rows(&w, n, k, k);
                for threads in [1, 2] {
                    let mut want = vec![0.0f32; m * n];
                    matmul(isa, &a, k, m, &packed, Some(&bias), Activation::Identity, &mut want, n, threads);
                    crate::cpu::ops::gelu(isa, &mut want);
                    let mut got = vec![0.0f32; m * n];
                    matmul(isa, &a, k, m, &packed, Some(&bias), Activation::Gelu, &mut got, n, threads);
                    assert_eq!(got, want, "{isa:?} {m}x{n}x{k} on {threads} threads");
                }
            }
        }
    }

    #[test]
    fn matches_a_naive_product_on_every_isa_and_edge() {
        for isa in Isa::available() {
            for &(m, n, k) in &[
                (1, 1, 1),
                (3, 33, 7),
                (9, 64, 300),
                (17, 70, 513),
                (18, 40, 384),
                (56, 50, 600),
                (64, 32, 20),
                (65, 48, 9),
                (130, 96, 40),
            ] {
                let (a, w, bias) = (values(m * k, 1), values(n * k, 2), values(n, 3));
                let want = naive(&a, m, k, &w, n, &bias);
                for threads in [1, 2] {
                    let mut got = vec![0.0f32; m * n];
                    let packed = Packed::from_rows(&w, n, k, k);
                    matmul(isa, &a, k, m, &packed, Some(&bias), Activation::Identity, &mut got, n, threads);
                    let diff = got.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
                    assert!(diff < 1e-4, "{isa:?} {m}x{n}x{k}: {diff}");
                }
            }
        }
    }
}
