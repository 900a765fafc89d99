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
    /// `quantize` in AVX-512 registers (the compiler's version of the loops below spent more
    /// than the AMX product itself): the same values, rounding half to even as `cvtps2dq` does.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,fma")]
    unsafe fn quantize_avx512(&mut self, a: &[f32], m: usize, k: usize, stride: usize) {
        use std::arch::x86_64::*;
        self.values.clear();
        self.values.resize(m.next_multiple_of(16) * stride, 0);
        self.scales.clear();
        self.zeros.clear();
        let whole = k / 16 * 16;
        for (r, row) in a.chunks_exact(k).take(m).enumerate() {
            let (mut low, mut high) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            for chunk in 0..whole / 16 {
                let v = _mm512_loadu_ps(row.as_ptr().add(chunk * 16));
                low = _mm512_min_ps(low, v);
                high = _mm512_max_ps(high, v);
            }
            let (mut low, mut high) = (_mm512_reduce_min_ps(low), _mm512_reduce_max_ps(high));
            for &v in &row[whole..] {
                low = if v < low { v } else { low };
                high = if v > high { v } else { high };
            }
            let scale = if high > low { (high - low) / 255.0 } else { 1.0 };
            let zero = (-low / scale).round().clamp(0.0, 255.0);
            let inverse = 1.0 / scale;
            let out = &mut self.values[r * stride..r * stride + k];
            let (inverse_v, zero_v, floor) =
                (_mm512_set1_ps(inverse), _mm512_set1_ps(zero), _mm512_setzero_si512());
            for chunk in 0..whole / 16 {
                let v = _mm512_loadu_ps(row.as_ptr().add(chunk * 16));
                let q = _mm512_max_epi32(_mm512_cvtps_epi32(_mm512_fmadd_ps(v, inverse_v, zero_v)), floor);
                _mm_storeu_si128(out.as_mut_ptr().add(chunk * 16) as *mut __m128i, _mm512_cvtusepi32_epi8(q));
            }
            for (slot, &v) in out[whole..].iter_mut().zip(&row[whole..]) {
                *slot = v.mul_add(inverse, zero).round_ties_even() as u8;
            }
            self.scales.push(scale);
            self.zeros.push(zero as i32);
        }
    }

    /// Rows of `k` floats to `stride` (>= k, padded with zeros) bytes each.
    #[inline(always)]
    fn quantize(&mut self, a: &[f32], m: usize, k: usize, stride: usize) {
        self.values.clear();
        // Whole tiles of rows for AMX: the rows past m stay zero.
        self.values.resize(m.next_multiple_of(16) * stride, 0);
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

/// AMX: `tdpbusd` multiplies a tile of 16 rows x 64 u8 by one of 64 depths x 16 columns of i8
/// (in the panels' groups of four depths, so the packed panels serve as they are) into 16 x 16
/// int32, 16 K multiply-adds per instruction. Rust has no AMX intrinsics on stable: inline asm.
#[cfg(target_arch = "x86_64")]
mod amx {
    use std::arch::asm;
    use std::sync::OnceLock;

    use super::NR;

    /// Depth per tile step.
    pub(super) const DEPTH: usize = 64;
    /// Rows per product call (two tiles of 16).
    pub(super) const ROWS: usize = 32;

    /// The CPU has AMX-INT8 and the kernel granted this process the tile state (Linux asks each
    /// process to request it: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)). Off with
    /// `VSR_CPU_ISA` set to `avx512` or lower.
    pub(super) fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            if std::env::var("VSR_CPU_ISA")
                .is_ok_and(|isa| ["avx512", "avx2", "portable"].contains(&isa.as_str()))
            {
                return false;
            }
            // SAFETY: cpuid leaf 7 exists on every x86_64 CPU that reports AVX-512 (checked by
            // the caller first).
            #[allow(unused_unsafe)]
            let leaf = unsafe { std::arch::x86_64::__cpuid_count(7, 0) };
            let (tile, int8) = (leaf.edx & (1 << 24) != 0, leaf.edx & (1 << 25) != 0);
            if !(tile && int8) {
                return false;
            }
            let status: i64;
            // SAFETY: arch_prctl (158) with ARCH_REQ_XCOMP_PERM (0x1023) and XFEATURE_XTILEDATA
            // (18) only changes this process's permission; it returns 0 or a negative errno.
            unsafe {
                asm!("syscall", inlateout("rax") 158i64 => status, in("rdi") 0x1023i64, in("rsi") 18i64,
                     lateout("rcx") _, lateout("r11") _, options(nostack));
            }
            status == 0
        })
    }

    #[repr(C, align(64))]
    struct TileConfig {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        bytes_per_row: [u16; 16],
        rows: [u8; 16],
    }

    /// Every tile 16 rows x 64 bytes, on this thread (tile state is per thread).
    pub(super) unsafe fn configure() {
        // Palette 1 has 8 tiles; the other entries must be zero (else ldtilecfg faults).
        let (mut bytes_per_row, mut rows) = ([0u16; 16], [0u8; 16]);
        bytes_per_row[..8].fill(64);
        rows[..8].fill(16);
        let config = TileConfig { palette: 1, start_row: 0, reserved: [0; 14], bytes_per_row, rows };
        asm!("ldtilecfg [{}]", in(reg) &config as *const TileConfig, options(nostack, readonly));
    }

    /// Let the OS stop saving this thread's tiles at context switches.
    pub(super) unsafe fn release() {
        asm!("tilerelease", options(nostack, nomem));
    }

    /// int32 sums of 16 (or 32 with `two`) rows of `a` (u8, `stride` bytes apart) against the
    /// 32-column panel `b`, over `blocks` depth blocks of 64, into `sums` (its first 16 or 32 rows).
    pub(super) unsafe fn product(
        two: bool,
        a: *const u8,
        stride: usize,
        b: *const i8,
        blocks: usize,
        sums: &mut [[i32; NR]; ROWS],
    ) {
        // B rows are groups of four depths, NR * 4 bytes apart; the panel's two halves of 16
        // columns are 64 bytes apart within a row.
        let ldb = NR * 4;
        asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        for block in 0..blocks {
            let (a0, b0) = (a.add(block * DEPTH), b.add(block * 16 * ldb));
            if two {
                asm!(
                    "tileloadd tmm4, [{a0} + {lda}*1]",
                    "tileloadd tmm5, [{a1} + {lda}*1]",
                    "tileloadd tmm6, [{b0} + {ldb}*1]",
                    "tileloadd tmm7, [{b1} + {ldb}*1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm1, tmm4, tmm7",
                    "tdpbusd tmm2, tmm5, tmm6",
                    "tdpbusd tmm3, tmm5, tmm7",
                    a0 = in(reg) a0, a1 = in(reg) a0.add(16 * stride), lda = in(reg) stride,
                    b0 = in(reg) b0, b1 = in(reg) b0.add(64), ldb = in(reg) ldb,
                    options(nostack, readonly),
                );
            } else {
                asm!(
                    "tileloadd tmm4, [{a0} + {lda}*1]",
                    "tileloadd tmm6, [{b0} + {ldb}*1]",
                    "tileloadd tmm7, [{b1} + {ldb}*1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm1, tmm4, tmm7",
                    a0 = in(reg) a0, lda = in(reg) stride,
                    b0 = in(reg) b0, b1 = in(reg) b0.add(64), ldb = in(reg) ldb,
                    options(nostack, readonly),
                );
            }
        }
        let c = sums.as_mut_ptr() as *mut i32;
        let ldc = NR * 4;
        asm!(
            "tilestored [{c0} + {ldc}*1], tmm0",
            "tilestored [{c1} + {ldc}*1], tmm1",
            c0 = in(reg) c, c1 = in(reg) c.add(16), ldc = in(reg) ldc,
            options(nostack),
        );
        if two {
            asm!(
                "tilestored [{c0} + {ldc}*1], tmm2",
                "tilestored [{c1} + {ldc}*1], tmm3",
                c0 = in(reg) c.add(16 * NR), c1 = in(reg) c.add(16 * NR + 16), ldc = in(reg) ldc,
                options(nostack),
            );
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
        prefetch: bool,
    ) {
        if prefetch {
            by_rows::<true>(r, a, stride, b, groups, sums)
        } else {
            by_rows::<false>(r, a, stride, b, groups, sums)
        }
    }

    #[inline(always)]
    unsafe fn by_rows<const PF: bool>(
        r: usize,
        a: *const u8,
        stride: usize,
        b: *const i8,
        groups: usize,
        sums: &mut [[i32; NR]; MR],
    ) {
        match r {
            8 => kernel::<8, PF>(a, stride, b, groups, sums),
            7 => kernel::<7, PF>(a, stride, b, groups, sums),
            6 => kernel::<6, PF>(a, stride, b, groups, sums),
            5 => kernel::<5, PF>(a, stride, b, groups, sums),
            4 => kernel::<4, PF>(a, stride, b, groups, sums),
            3 => kernel::<3, PF>(a, stride, b, groups, sums),
            2 => kernel::<2, PF>(a, stride, b, groups, sums),
            _ => kernel::<1, PF>(a, stride, b, groups, sums),
        }
    }

    /// Groups of four depths the prefetch runs ahead (one group is two cache lines).
    const AHEAD: usize = 16;

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn kernel<const R: usize, const PF: bool>(
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
            if PF {
                // Past the panel's end this touches the next panel: harmless.
                _mm_prefetch::<_MM_HINT_T0>(panel.wrapping_add(AHEAD * NR * 4));
                _mm_prefetch::<_MM_HINT_T0>(panel.wrapping_add(AHEAD * NR * 4 + 64));
            }
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
