//! bfloat16 products for the products int8 would move too far: weights rounded to bf16 once,
//! activations rounded to bf16 per call, pairs of depths multiplied and summed in float32 with
//! AVX-512 BF16 (`vdpbf16ps`: 32 multiply-adds per instruction against 16 in float32), then
//! the bias added. Where the CPU lacks AVX512_BF16 the same bf16 values run in plain loops.
//!
//! bf16 keeps 8 significant bits of every value whatever its size, where int8 per channel or per
//! row keeps fewer for the values far below the largest: a numpy emulation of MiniLM and the
//! default bundle (benches/int8_emulate.py) put every product in bf16 at cosine min 0.99996 and
//! 99.80% unchanged decisions, per-channel int8 at 0.99587 / 96.58%.

use std::cell::RefCell;

use super::super::pool::{for_each_part, SendPtr};
use super::{MC, MR, NR};

pub(crate) struct Bf16Weight {
    n: usize,
    k: usize,
    /// `ceil(k / 2)` pairs of depths; per panel and pair, 32 columns x 2 values.
    pairs: usize,
    data: Vec<u16>,
    avx512: bool,
}

/// float32 to bfloat16, rounding to nearest even (as `vcvtne2ps2bf16` does; no NaNs here).
#[inline(always)]
fn to_bf16(value: f32) -> u16 {
    let bits = value.to_bits();
    ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

fn from_bf16(value: u16) -> f32 {
    f32::from_bits((value as u32) << 16)
}

fn bf16_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::super::Isa::detect() == super::super::Isa::Avx512 && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One call's activations in bf16, rows `stride` values apart (zero padded), reused on a thread.
#[derive(Default)]
struct Rows(Vec<u16>);

thread_local! {
    static ROWS: RefCell<Rows> = RefCell::new(Rows::default());
}

impl Rows {
    fn fill(&mut self, a: &[f32], m: usize, k: usize, stride: usize, avx512: bool) {
        self.0.clear();
        self.0.resize(m * stride, 0);
        for (row, out) in a.chunks_exact(k).take(m).zip(self.0.chunks_exact_mut(stride)) {
            #[cfg(target_arch = "x86_64")]
            if avx512 {
                // SAFETY: avx512 is set only where the CPU has AVX512_BF16.
                unsafe { fill_row_avx512(row, out) };
                continue;
            }
            let _ = avx512;
            for (slot, &value) in out.iter_mut().zip(row) {
                *slot = to_bf16(value);
            }
        }
    }
}

/// One row to bf16 with `vcvtneps2bf16` (the same rounding; it also flushes denormals to zero).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16,avx512vl")]
unsafe fn fill_row_avx512(row: &[f32], out: &mut [u16]) {
    use std::arch::x86_64::*;
    let whole = row.len() / 16 * 16;
    for start in (0..whole).step_by(16) {
        let converted = _mm512_cvtneps_pbh(_mm512_loadu_ps(row.as_ptr().add(start)));
        _mm256_storeu_si256(
            out.as_mut_ptr().add(start) as *mut __m256i,
            std::mem::transmute::<__m256bh, __m256i>(converted),
        );
    }
    for (slot, &value) in out[whole..].iter_mut().zip(&row[whole..]) {
        *slot = to_bf16(value);
    }
}

impl Bf16Weight {
    /// From a float32 weight in (out = n, in = k) row-major layout.
    pub(crate) fn new(w: &[f32], n: usize, k: usize) -> Self {
        let pairs = k.div_ceil(2);
        let panels = n.div_ceil(NR);
        let mut data = vec![0u16; panels * pairs * NR * 2];
        for j in 0..n {
            let (panel, column) = (j / NR, j % NR);
            for (depth, &value) in w[j * k..(j + 1) * k].iter().enumerate() {
                data[((panel * pairs + depth / 2) * NR + column) * 2 + depth % 2] = to_bf16(value);
            }
        }
        Bf16Weight { n, k, pairs, data, avx512: bf16_available() }
    }

    /// `c = a · Wᵀ + bias` for `m` contiguous rows of `k` values into `m` rows of `n`.
    pub(crate) fn matmul(&self, a: &[f32], m: usize, bias: &[f32], c: &mut [f32], threads: usize) {
        assert!(a.len() >= m * self.k && c.len() >= m * self.n && bias.len() >= self.n);
        // Taken out of the thread's slot, not borrowed (see QuantizedWeight::matmul).
        let mut rows = ROWS.with(|slot| std::mem::take(&mut *slot.borrow_mut()));
        let stride = self.pairs * 2;
        rows.fill(a, m, self.k, stride, self.avx512);
        {
            let values = &rows.0;
            let out = SendPtr(c.as_mut_ptr());
            let macs = m * self.n * self.k;
            let parts = if threads > 1 && macs >= 2 * super::super::PARALLEL_MACS { threads } else { 1 };
            let panels = self.n.div_ceil(NR);
            if m >= MC * parts || panels < parts {
                for_each_part(parts, m.div_ceil(MC), |blocks| {
                    for block in blocks {
                        let range = (block * MC)..((block + 1) * MC).min(m);
                        // SAFETY: disjoint row blocks of C, in bounds (asserted above).
                        unsafe { self.block(values, range, 0..panels, bias, out) };
                    }
                });
            } else {
                for_each_part(parts, panels, |panel_range| {
                    // SAFETY: disjoint column panels of C, in bounds.
                    unsafe { self.block(values, 0..m, panel_range, bias, out) };
                });
            }
        }
        ROWS.with(|slot| *slot.borrow_mut() = rows);
    }

    unsafe fn block(
        &self,
        values: &[u16],
        range: std::ops::Range<usize>,
        panels: std::ops::Range<usize>,
        bias: &[f32],
        out: SendPtr<f32>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.avx512 {
            return self.block_avx512(values, range, panels, bias, out);
        }
        self.block_body(values, range, panels, bias, out)
    }

    /// The block with its bias loop compiled for AVX-512 (the kernel already is).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn block_avx512(
        &self,
        values: &[u16],
        range: std::ops::Range<usize>,
        panels: std::ops::Range<usize>,
        bias: &[f32],
        out: SendPtr<f32>,
    ) {
        self.block_body(values, range, panels, bias, out)
    }

    #[inline(always)]
    unsafe fn block_body(
        &self,
        values: &[u16],
        range: std::ops::Range<usize>,
        panels: std::ops::Range<usize>,
        bias: &[f32],
        out: SendPtr<f32>,
    ) {
        let stride = self.pairs * 2;
        // Every call writes the rows it is given (the kernel stores them, `portable` zeroes them
        // first), so one buffer serves the whole block.
        let mut sums = [[0.0f32; NR]; MR];
        for panel in panels {
            let b = self.data.as_ptr().add(panel * self.pairs * NR * 2);
            let (start, cols) = (panel * NR, NR.min(self.n - panel * NR));
            let mut row = range.start;
            while row < range.end {
                let r = MR.min(range.end - row);
                let a = values.as_ptr().add(row * stride);
                #[cfg(target_arch = "x86_64")]
                if self.avx512 {
                    avx512::dispatch(r, a, stride, b, self.pairs, &mut sums);
                } else {
                    portable(r, a, stride, b, self.pairs, &mut sums);
                }
                #[cfg(not(target_arch = "x86_64"))]
                portable(r, a, stride, b, self.pairs, &mut sums);
                let bias = &bias[start..start + cols];
                for (i, sums) in sums.iter().enumerate().take(r) {
                    let c = std::slice::from_raw_parts_mut(out.get().add((row + i) * self.n + start), cols);
                    for ((c, sum), bias) in c.iter_mut().zip(sums).zip(bias) {
                        *c = sum + bias;
                    }
                }
                row += r;
            }
        }
    }
}

/// float32 sums for `r` rows against one panel, in plain loops.
unsafe fn portable(
    r: usize,
    a: *const u16,
    stride: usize,
    b: *const u16,
    pairs: usize,
    sums: &mut [[f32; NR]; MR],
) {
    for (row, sums) in sums.iter_mut().enumerate().take(r) {
        let a_row = a.add(row * stride);
        sums.fill(0.0);
        for pair in 0..pairs {
            let panel = b.add(pair * NR * 2);
            let (x0, x1) = (from_bf16(*a_row.add(pair * 2)), from_bf16(*a_row.add(pair * 2 + 1)));
            for (col, sum) in sums.iter_mut().enumerate() {
                *sum += x0 * from_bf16(*panel.add(col * 2)) + x1 * from_bf16(*panel.add(col * 2 + 1));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{MR, NR};

    pub(super) unsafe fn dispatch(
        r: usize,
        a: *const u16,
        stride: usize,
        b: *const u16,
        pairs: usize,
        sums: &mut [[f32; NR]; MR],
    ) {
        match r {
            8 => kernel::<8>(a, stride, b, pairs, sums),
            7 => kernel::<7>(a, stride, b, pairs, sums),
            6 => kernel::<6>(a, stride, b, pairs, sums),
            5 => kernel::<5>(a, stride, b, pairs, sums),
            4 => kernel::<4>(a, stride, b, pairs, sums),
            3 => kernel::<3>(a, stride, b, pairs, sums),
            2 => kernel::<2>(a, stride, b, pairs, sums),
            _ => kernel::<1>(a, stride, b, pairs, sums),
        }
    }

    /// Pairs of depths the prefetch runs ahead (one pair is two cache lines).
    const AHEAD: usize = 16;

    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn kernel<const R: usize>(
        a: *const u16,
        stride: usize,
        b: *const u16,
        pairs: usize,
        sums: &mut [[f32; NR]; MR],
    ) {
        let mut lo = [_mm512_setzero_ps(); R];
        let mut hi = [_mm512_setzero_ps(); R];
        let mut panel = b;
        for pair in 0..pairs {
            // Past the panel's end this touches the next panel: harmless.
            _mm_prefetch::<_MM_HINT_T0>(panel.wrapping_add(AHEAD * NR * 2) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(panel.wrapping_add(AHEAD * NR * 2 + 32) as *const i8);
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(panel as *const __m512i));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(panel.add(32) as *const __m512i));
            for row in 0..R {
                let two = (a.add(row * stride + pair * 2) as *const i32).read_unaligned();
                let broadcast: __m512bh = std::mem::transmute(_mm512_set1_epi32(two));
                lo[row] = _mm512_dpbf16_ps(lo[row], broadcast, b0);
                hi[row] = _mm512_dpbf16_ps(hi[row], broadcast, b1);
            }
            panel = panel.add(NR * 2);
        }
        for row in 0..R {
            _mm512_storeu_ps(sums[row].as_mut_ptr(), lo[row]);
            _mm512_storeu_ps(sums[row].as_mut_ptr().add(16), hi[row]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_values as values;

    #[test]
    fn bf16_product_is_close_to_float32() {
        // 301 deep: an odd depth (a padded pair); 19 and 40 rows: partial kernel calls.
        for (m, n, k) in [(19, 70, 301), (40, 96, 384), (3, 33, 2)] {
            let (a, w, bias) = (values(m * k, 1), values(n * k, 2), values(n, 3));
            let mut weight = Bf16Weight::new(&w, n, k);
            for avx512 in [false, weight.avx512] {
                weight.avx512 = avx512;
                for threads in [1, 2] {
                    let mut got = vec![0.0f32; m * n];
                    weight.matmul(&a, m, &bias, &mut got, threads);
                    for r in 0..m {
                        for j in 0..n {
                            let exact: f32 =
                                (0..k).map(|d| a[r * k + d] * w[j * k + d]).sum::<f32>() + bias[j];
                            // Both factors rounded to 8 significant bits: ~0.4% of each product.
                            let bound: f32 =
                                (0..k).map(|d| (a[r * k + d] * w[j * k + d]).abs()).sum::<f32>() * 0.008;
                            let diff = (got[r * n + j] - exact).abs();
                            assert!(
                                diff <= bound + 1e-6,
                                "avx512 {avx512}, {threads} threads: {diff} > {bound}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// `cargo test --release --lib -- --ignored --nocapture bf16_speed`: bf16 against int8 on
    /// the shapes a MiniLM layer runs, one thread (the minimum time of many calls).
    #[test]
    #[ignore]
    fn bf16_speed() {
        for &(m, n, k) in
            &[(16, 1152, 384), (16, 384, 1536), (64, 1152, 384), (64, 1536, 384), (64, 384, 1536)]
        {
            let (a, w, bias) = (values(m * k, 1), values(n * k, 2), vec![0.0f32; n]);
            let (bf16, int8) = (Bf16Weight::new(&w, n, k), super::super::QuantizedWeight::new(&w, n, k));
            let mut c = vec![0.0f32; m * n];
            let mut best = [f64::MAX; 2];
            for _ in 0..300 {
                let start = std::time::Instant::now();
                bf16.matmul(&a, m, &bias, &mut c, 1);
                best[0] = best[0].min(start.elapsed().as_secs_f64());
                let start = std::time::Instant::now();
                int8.matmul(&a, m, &bias, &mut c, 1);
                best[1] = best[1].min(start.elapsed().as_secs_f64());
            }
            let ops = 2.0 * (m * n * k) as f64;
            println!(
                "{m}x{n}x{k}: bf16 {:.1} GFLOP/s ({:.1} us), int8 {:.1} GOP/s ({:.1} us)",
                ops / best[0] / 1e9,
                best[0] * 1e6,
                ops / best[1] / 1e9,
                best[1] * 1e6
            );
        }
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3F80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: to the even one, 1.
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3F80);
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3F82);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
    }
}
