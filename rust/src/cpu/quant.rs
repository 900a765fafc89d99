//! int8 products for `dtype="int8"`: weights quantized once per output channel (symmetric,
//! [-127, 127]), activations per row at run time (asymmetric, [0, 255]), accumulated in int32 with
//! AVX-512 VNNI (`vpdpbusd`: 64 multiply-adds per instruction against 16 in float32) and scaled
//! back to float32 with the bias.
//!
//! `y[r][j] = sa[r] * sw[j] * (sum_k ua[r][k] * qw[j][k] - za[r] * sum_k qw[j][k]) + bias[j]`

use std::cell::RefCell;

use super::pool::{for_each_part, SendPtr};

/// Output columns per packed panel (two registers of 16 int32 sums).
const NR: usize = 32;
/// Rows per kernel call.
const MR: usize = 8;
/// Rows per block handed to one thread.
const MC: usize = 128;

pub(crate) struct QuantizedWeight {
    n: usize,
    k: usize,
    /// `ceil(k / 4)` groups of 4 depths; per panel and group, 32 columns x 4 bytes.
    groups: usize,
    data: Vec<i8>,
    scales: Vec<f32>,
    column_sums: Vec<i32>,
    vnni: bool,
}

impl QuantizedWeight {
    /// From a float32 weight in (out = n, in = k) row-major layout.
    pub(crate) fn new(w: &[f32], n: usize, k: usize) -> Self {
        let groups = k.div_ceil(4);
        let panels = n.div_ceil(NR);
        let mut data = vec![0i8; panels * groups * NR * 4];
        let mut scales = vec![0.0f32; n];
        let mut column_sums = vec![0i32; n];
        for j in 0..n {
            let row = &w[j * k..(j + 1) * k];
            let largest = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
            scales[j] = scale;
            let (panel, column) = (j / NR, j % NR);
            for (depth, &value) in row.iter().enumerate() {
                let q = (value / scale).round().clamp(-127.0, 127.0) as i8;
                column_sums[j] += q as i32;
                data[((panel * groups + depth / 4) * NR + column) * 4 + depth % 4] = q;
            }
        }
        QuantizedWeight { n, k, groups, data, scales, column_sums, vnni: vnni_available() }
    }

    /// `c = a · Wᵀ + bias` for `m` contiguous rows of `k` values into `m` rows of `n`.
    pub(crate) fn matmul(&self, a: &[f32], m: usize, bias: &[f32], c: &mut [f32], threads: usize) {
        assert!(a.len() >= m * self.k && c.len() >= m * self.n && bias.len() >= self.n);
        // Taken out of the thread's slot, not borrowed from it: while this thread waits for its
        // sibling below, rayon may run another forward's product on it (a RefCell borrow held
        // across that panicked with two concurrent requests).
        let mut taken = ROWS.with(|slot| std::mem::take(&mut *slot.borrow_mut()));
        {
            let rows = &mut taken;
            let stride = self.groups * 4;
            #[cfg(target_arch = "x86_64")]
            if self.vnni {
                // SAFETY: vnni is set only where the CPU has AVX-512.
                unsafe { rows.quantize_avx512(a, m, self.k, stride) };
            } else {
                rows.quantize(a, m, self.k, stride);
            }
            #[cfg(not(target_arch = "x86_64"))]
            rows.quantize(a, m, self.k, stride);
            let out = SendPtr(c.as_mut_ptr());
            let macs = m * self.n * self.k;
            let parts = if threads > 1 && macs >= 2 * super::PARALLEL_MACS { threads } else { 1 };
            let panels = self.n.div_ceil(NR);
            let rows = &*rows;
            if m >= MC * parts || panels < parts {
                for_each_part(parts, m.div_ceil(MC), |blocks| {
                    for block in blocks {
                        let range = (block * MC)..((block + 1) * MC).min(m);
                        // SAFETY: disjoint row blocks of C, in bounds (asserted above).
                        unsafe { self.block(rows, range, 0..panels, bias, out) };
                    }
                });
            } else {
                for_each_part(parts, panels, |panel_range| {
                    // SAFETY: disjoint column panels of C, in bounds.
                    unsafe { self.block(rows, 0..m, panel_range, bias, out) };
                });
            }
        }
        ROWS.with(|slot| *slot.borrow_mut() = taken);
    }

    unsafe fn block(
        &self,
        rows: &QuantizedRows,
        range: std::ops::Range<usize>,
        panels: std::ops::Range<usize>,
        bias: &[f32],
        out: SendPtr<f32>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.vnni {
            return self.block_avx512(rows, range, panels, bias, out);
        }
        self.block_body(rows, range, panels, bias, out)
    }

    /// The block with its scaling compiled for AVX-512 (the kernels already are).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,fma")]
    unsafe fn block_avx512(
        &self,
        rows: &QuantizedRows,
        range: std::ops::Range<usize>,
        panels: std::ops::Range<usize>,
        bias: &[f32],
        out: SendPtr<f32>,
    ) {
        self.block_body(rows, range, panels, bias, out)
    }

    #[inline(always)]
    unsafe fn block_body(
        &self,
        rows: &QuantizedRows,
        range: std::ops::Range<usize>,
        panels: std::ops::Range<usize>,
        bias: &[f32],
        out: SendPtr<f32>,
    ) {
        let stride = self.groups * 4;
        for panel in panels {
            let b = self.data.as_ptr().add(panel * self.groups * NR * 4);
            let (start, cols) = (panel * NR, NR.min(self.n - panel * NR));
            let (mut column_sums, mut column_scales, mut column_bias) =
                ([0i32; NR], [0.0f32; NR], [0.0f32; NR]);
            column_sums[..cols].copy_from_slice(&self.column_sums[start..start + cols]);
            column_scales[..cols].copy_from_slice(&self.scales[start..start + cols]);
            column_bias[..cols].copy_from_slice(&bias[start..start + cols]);
            let mut row = range.start;
            while row < range.end {
                let r = MR.min(range.end - row);
                let mut sums = [[0i32; NR]; MR];
                let a = rows.values.as_ptr().add(row * stride);
                #[cfg(target_arch = "x86_64")]
                if self.vnni {
                    vnni::dispatch(r, a, stride, b, self.groups, &mut sums);
                } else {
                    portable(r, a, stride, b, self.groups, &mut sums);
                }
                #[cfg(not(target_arch = "x86_64"))]
                portable(r, a, stride, b, self.groups, &mut sums);
                for (i, sums) in sums.iter().enumerate().take(r) {
                    let (scale, zero) = (rows.scales[row + i], rows.zeros[row + i]);
                    let mut values = [0.0f32; NR];
                    for col in 0..NR {
                        let exact = sums[col] - zero * column_sums[col];
                        values[col] = (exact as f32).mul_add(scale * column_scales[col], column_bias[col]);
                    }
                    let target = out.get().add((row + i) * self.n + start);
                    std::ptr::copy_nonoverlapping(values.as_ptr(), target, cols);
                }
                row += r;
            }
        }
    }
}

fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One call's activations quantized per row, reused between calls on a thread.
#[derive(Default)]
struct QuantizedRows {
    values: Vec<u8>,
    scales: Vec<f32>,
    zeros: Vec<i32>,
}

thread_local! {
    static ROWS: RefCell<QuantizedRows> = RefCell::new(QuantizedRows::default());
}

impl QuantizedRows {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,fma")]
    unsafe fn quantize_avx512(&mut self, a: &[f32], m: usize, k: usize, stride: usize) {
        self.quantize(a, m, k, stride)
    }

    /// Rows of `k` floats to `stride` (>= k, padded with zeros) bytes each.
    #[inline(always)]
    fn quantize(&mut self, a: &[f32], m: usize, k: usize, stride: usize) {
        self.values.clear();
        self.values.resize(m * stride, 0);
        self.scales.clear();
        self.zeros.clear();
        for (r, row) in a.chunks_exact(k).take(m).enumerate() {
            // The range includes 0 so that 0 (padding, ReLU-like zeros) is exact.
            let (low, high) = row.iter().fold((0.0f32, 0.0f32), |(lo, hi), &v| {
                (if v < lo { v } else { lo }, if v > hi { v } else { hi })
            });
            let scale = if high > low { (high - low) / 255.0 } else { 1.0 };
            let zero = (-low / scale).round().clamp(0.0, 255.0);
            let inverse = 1.0 / scale;
            for (slot, &v) in self.values[r * stride..r * stride + k].iter_mut().zip(row) {
                // `as` saturates to 0..=255.
                *slot = v.mul_add(inverse, zero).round_ties_even() as u8;
            }
            self.scales.push(scale);
            self.zeros.push(zero as i32);
        }
    }
}

/// int32 sums for `r` rows against one panel, in plain loops.
unsafe fn portable(
    r: usize,
    a: *const u8,
    stride: usize,
    b: *const i8,
    groups: usize,
    sums: &mut [[i32; NR]; MR],
) {
    for (row, sums) in sums.iter_mut().enumerate().take(r) {
        let a_row = a.add(row * stride);
        for group in 0..groups {
            let panel = b.add(group * NR * 4);
            for (col, sum) in sums.iter_mut().enumerate() {
                for lane in 0..4 {
                    *sum += *a_row.add(group * 4 + lane) as i32 * *panel.add(col * 4 + lane) as i32;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    use super::{MR, NR};

    pub(super) unsafe fn dispatch(
        r: usize,
        a: *const u8,
        stride: usize,
        b: *const i8,
        groups: usize,
        sums: &mut [[i32; NR]; MR],
    ) {
        match r {
            8 => kernel::<8>(a, stride, b, groups, sums),
            7 => kernel::<7>(a, stride, b, groups, sums),
            6 => kernel::<6>(a, stride, b, groups, sums),
            5 => kernel::<5>(a, stride, b, groups, sums),
            4 => kernel::<4>(a, stride, b, groups, sums),
            3 => kernel::<3>(a, stride, b, groups, sums),
            2 => kernel::<2>(a, stride, b, groups, sums),
            _ => kernel::<1>(a, stride, b, groups, sums),
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn kernel<const R: usize>(
        a: *const u8,
        stride: usize,
        b: *const i8,
        groups: usize,
        sums: &mut [[i32; NR]; MR],
    ) {
        let mut lo = [_mm512_setzero_si512(); R];
        let mut hi = [_mm512_setzero_si512(); R];
        let mut panel = b;
        for group in 0..groups {
            let b0 = _mm512_loadu_si512(panel as *const __m512i);
            let b1 = _mm512_loadu_si512(panel.add(64) as *const __m512i);
            for row in 0..R {
                let four = (a.add(row * stride + group * 4) as *const i32).read_unaligned();
                let broadcast = _mm512_set1_epi32(four);
                lo[row] = _mm512_dpbusd_epi32(lo[row], broadcast, b0);
                hi[row] = _mm512_dpbusd_epi32(hi[row], broadcast, b1);
            }
            panel = panel.add(NR * 4);
        }
        for row in 0..R {
            _mm512_storeu_si512(sums[row].as_mut_ptr() as *mut __m512i, lo[row]);
            _mm512_storeu_si512(sums[row].as_mut_ptr().add(16) as *mut __m512i, hi[row]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_product_is_close_to_float32() {
        let (m, n, k) = (19, 70, 301);
        let values = |count: usize, seed: u32| -> Vec<f32> {
            let mut state = seed;
            (0..count)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
                })
                .collect()
        };
        let (a, w, bias) = (values(m * k, 1), values(n * k, 2), values(n, 3));
        let mut exact = vec![0.0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                exact[r * n + j] = (0..k).map(|d| a[r * k + d] * w[j * k + d]).sum::<f32>() + bias[j];
            }
        }
        {
            let mut weight = QuantizedWeight::new(&w, n, k);
            for vnni in [false, weight.vnni] {
                weight.vnni = vnni;
                for threads in [1, 2] {
                    let mut got = vec![0.0f32; m * n];
                    weight.matmul(&a, m, &bias, &mut got, threads);
                    let diff = got.iter().zip(&exact).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
                    // Sums of 301 products of values in [-0.5, 0.5]: ~0.1% of their spread.
                    assert!(diff < 0.03, "vnni {vnni}, {threads} threads: max abs diff {diff}");
                }
            }
        }
    }

    #[test]
    fn concurrent_products_share_the_pool() {
        // Several callers' parallel products on one pool: a worker waiting for its sibling runs
        // another caller's product meanwhile, which must not touch the waiting one's buffers.
        let (m, n, k) = (64, 512, 384);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 / 17.0 - 0.5).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i % 13) as f32 / 13.0 - 0.5).collect();
        let weight = std::sync::Arc::new(QuantizedWeight::new(&w, n, k));
        let bias = vec![0.0f32; n];
        let mut expected = vec![0.0f32; m * n];
        weight.matmul(&a, m, &bias, &mut expected, 1);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (weight, a, bias, expected) = (weight.clone(), a.clone(), bias.clone(), expected.clone());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let mut got = vec![0.0f32; m * n];
                        crate::cpu::install(|| weight.matmul(&a, m, &bias, &mut got, 2));
                        assert_eq!(got, expected);
                    }
                })
            })
            .collect();
        for handle in handles {
            assert!(handle.join().is_ok());
        }
    }
}
