//! int8 products for `dtype="int8"`: weights quantized once per output channel (symmetric,
//! [-127, 127]), activations per row at run time (asymmetric, [0, 255]), accumulated in int32 with
//! AVX-512 VNNI (`vpdpbusd`: 64 multiply-adds per instruction against 16 in float32) and scaled
//! back to float32 with the bias.
//!
//! `y[r][j] = sa[r] * sw[j] * (sum_k ua[r][k] * qw[j][k] - za[r] * sum_k qw[j][k]) + bias[j]`

#[cfg(target_arch = "x86_64")]
mod amx;
mod bf16;
mod rows;
#[cfg(target_arch = "x86_64")]
mod vnni;

pub(crate) use bf16::Bf16Weight;
use rows::{QuantizedRows, ROWS};

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
    /// AMX tiles (`tdpbusd`): where the CPU and OS allow them and `k` is a multiple of 64.
    amx: bool,
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
        let vnni = vnni_available();
        #[cfg(target_arch = "x86_64")]
        let amx = vnni && k.is_multiple_of(amx::DEPTH) && amx::available();
        #[cfg(not(target_arch = "x86_64"))]
        let amx = false;
        QuantizedWeight { n, k, groups, data, scales, column_sums, vnni, amx }
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
        if self.amx {
            return self.block_amx(rows, range, panels, bias, out);
        }
        #[cfg(target_arch = "x86_64")]
        if self.vnni {
            return self.block_avx512(rows, range, panels, bias, out);
        }
        self.block_body(rows, range, panels, bias, out)
    }

    /// The block on AMX tiles: 32 rows x 32 columns of int32 sums per step (four tiles), then
    /// the same scaling as the other paths, row by row.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,fma")]
    unsafe fn block_amx(
        &self,
        rows: &QuantizedRows,
        range: std::ops::Range<usize>,
        panels: std::ops::Range<usize>,
        bias: &[f32],
        out: SendPtr<f32>,
    ) {
        let stride = self.groups * 4;
        amx::configure();
        let mut sums = [[0i32; NR]; amx::ROWS];
        for panel in panels {
            let b = self.data.as_ptr().add(panel * self.groups * NR * 4);
            let (start, cols) = (panel * NR, NR.min(self.n - panel * NR));
            let columns = self.panel_columns(bias, start, cols);
            let mut row = range.start;
            while row < range.end {
                let r = amx::ROWS.min(range.end - row);
                // Rows past m are zeros in the quantized buffer (padded to 16), never stored.
                let a = rows.values.as_ptr().add(row * stride);
                amx::product(r > 16, a, stride, b, self.k / amx::DEPTH, &mut sums);
                for (i, sums) in sums.iter().enumerate().take(r) {
                    self.finish_row(rows, row + i, sums, &columns, start, cols, out);
                }
                row += r;
            }
        }
        amx::release();
    }

    /// One panel's column sums, scales and bias (columns `start..start + cols`), zero past its
    /// valid columns, for `finish_row`.
    #[inline(always)]
    fn panel_columns(&self, bias: &[f32], start: usize, cols: usize) -> ([i32; NR], [f32; NR], [f32; NR]) {
        let mut columns = ([0i32; NR], [0.0f32; NR], [0.0f32; NR]);
        columns.0[..cols].copy_from_slice(&self.column_sums[start..start + cols]);
        columns.1[..cols].copy_from_slice(&self.scales[start..start + cols]);
        columns.2[..cols].copy_from_slice(&bias[start..start + cols]);
        columns
    }

    /// Scale one row's int32 sums of one panel to float32 with the bias, into C (`panel`: the
    /// panel's column sums, scales and bias, zero past its valid columns).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn finish_row(
        &self,
        rows: &QuantizedRows,
        row: usize,
        sums: &[i32; NR],
        panel: &([i32; NR], [f32; NR], [f32; NR]),
        start: usize,
        cols: usize,
        out: SendPtr<f32>,
    ) {
        let (column_sums, column_scales, column_bias) = panel;
        let (scale, zero) = (rows.scales[row], rows.zeros[row]);
        let mut values = [0.0f32; NR];
        for col in 0..NR {
            let exact = sums[col] - zero * column_sums[col];
            values[col] = (exact as f32).mul_add(scale * column_scales[col], column_bias[col]);
        }
        std::ptr::copy_nonoverlapping(values.as_ptr(), out.get().add(row * self.n + start), cols);
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
            let columns = self.panel_columns(bias, start, cols);
            let mut row = range.start;
            while row < range.end {
                let r = MR.min(range.end - row);
                let mut sums = [[0i32; NR]; MR];
                let a = rows.values.as_ptr().add(row * stride);
                #[cfg(target_arch = "x86_64")]
                if self.vnni {
                    // The block's first rows meet the panel in memory: prefetch it ahead.
                    vnni::dispatch(r, a, stride, b, self.groups, &mut sums, row == range.start);
                } else {
                    portable(r, a, stride, b, self.groups, &mut sums);
                }
                #[cfg(not(target_arch = "x86_64"))]
                portable(r, a, stride, b, self.groups, &mut sums);
                for (i, sums) in sums.iter().enumerate().take(r) {
                    self.finish_row(rows, row + i, sums, &columns, start, cols, out);
                }
                row += r;
            }
        }
    }
}

fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // VSR_CPU_ISA below avx512 takes the portable product too (see `Isa::detect`).
        super::Isa::detect() == super::Isa::Avx512
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::test_values as values;

    #[test]
    fn int8_product_is_close_to_float32() {
        // 301 deep: not whole AMX tiles (VNNI); 384: AMX where the CPU has it, 19 and 40 rows
        // (a partial tile of 16, and two tiles plus a partial one).
        for (m, n, k) in [(19, 70, 301), (19, 70, 384), (40, 96, 128)] {
            product_is_close(m, n, k);
        }
    }

    fn product_is_close(m: usize, n: usize, k: usize) {
        let (a, w, bias) = (values(m * k, 1), values(n * k, 2), values(n, 3));
        let mut exact = vec![0.0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                exact[r * n + j] = (0..k).map(|d| a[r * k + d] * w[j * k + d]).sum::<f32>() + bias[j];
            }
        }
        {
            let mut weight = QuantizedWeight::new(&w, n, k);
            let amx = weight.amx;
            for (vnni, amx) in [(false, false), (weight.vnni, false), (weight.vnni, amx)] {
                (weight.vnni, weight.amx) = (vnni, amx);
                for threads in [1, 2] {
                    let mut got = vec![0.0f32; m * n];
                    weight.matmul(&a, m, &bias, &mut got, threads);
                    let diff = got.iter().zip(&exact).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
                    // Sums of k products of values in [-0.5, 0.5]: ~0.1% of their spread.
                    assert!(
                        diff < 0.002 * (k as f32).sqrt(),
                        "vnni {vnni} amx {amx}, {threads} threads: max abs diff {diff}"
                    );
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
