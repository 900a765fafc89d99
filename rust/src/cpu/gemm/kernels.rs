//! The product kernels: an `r x NR` block of C from `r` rows of A and one packed panel.
//!
//! AVX-512 keeps the block in registers (two per row, up to `MR_WIDE` rows) and streams the
//! panel; other CPUs run plain loops the compiler vectorises for AVX2 + FMA (or what it has).

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use std::arch::x86_64::*;

    use super::super::{Tile, MR_WIDE, NR};

    pub(in crate::cpu::gemm) unsafe fn dispatch(r: usize, tile: &Tile<'_>) {
        if tile.prefetch {
            by_rows::<true>(r, tile)
        } else {
            by_rows::<false>(r, tile)
        }
    }

    #[inline(always)]
    unsafe fn by_rows<const PF: bool>(r: usize, tile: &Tile<'_>) {
        match r {
            12 => kernel::<12, PF>(tile),
            11 => kernel::<11, PF>(tile),
            10 => kernel::<10, PF>(tile),
            9 => kernel::<9, PF>(tile),
            8 => kernel::<8, PF>(tile),
            7 => kernel::<7, PF>(tile),
            6 => kernel::<6, PF>(tile),
            5 => kernel::<5, PF>(tile),
            4 => kernel::<4, PF>(tile),
            3 => kernel::<3, PF>(tile),
            2 => kernel::<2, PF>(tile),
            _ => kernel::<1, PF>(tile),
        }
    }

    /// Depth steps the prefetch runs ahead (one step is two cache lines of the panel).
    const AHEAD: usize = 16;

    #[target_feature(enable = "avx512f")]
    unsafe fn kernel<const R: usize, const PF: bool>(t: &Tile<'_>) {
        debug_assert!(R <= MR_WIDE);
        let mut lo = [_mm512_setzero_ps(); R];
        let mut hi = [_mm512_setzero_ps(); R];
        for row in 0..R {
            if t.accumulate && t.cols == NR {
                lo[row] = _mm512_loadu_ps(t.c.add(row * t.ldc));
                hi[row] = _mm512_loadu_ps(t.c.add(row * t.ldc + 16));
            } else {
                let start = t.start(row);
                lo[row] = _mm512_loadu_ps(start.as_ptr());
                hi[row] = _mm512_loadu_ps(start.as_ptr().add(16));
            }
        }
        let mut b = t.b;
        let (mut next, mut next_lines) = (t.next, t.next_lines);
        for depth in 0..t.k {
            if next_lines > 0 {
                _mm_prefetch::<_MM_HINT_T1>(next as *const i8);
                next = next.add(64);
                next_lines -= 1;
            }
            if PF {
                // Past the block's end this touches the next block or panel: harmless.
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(AHEAD * NR) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(b.wrapping_add(AHEAD * NR + 16) as *const i8);
            }
            let b0 = _mm512_loadu_ps(b);
            let b1 = _mm512_loadu_ps(b.add(16));
            for row in 0..R {
                let a = _mm512_set1_ps(*t.a.add(row * t.lda + depth));
                lo[row] = _mm512_fmadd_ps(a, b0, lo[row]);
                hi[row] = _mm512_fmadd_ps(a, b1, hi[row]);
            }
            b = b.add(NR);
        }
        for row in 0..R {
            let out = t.c.add(row * t.ldc);
            if t.cols == NR {
                _mm512_storeu_ps(out, lo[row]);
                _mm512_storeu_ps(out.add(16), hi[row]);
            } else {
                let mut values = [0.0f32; NR];
                _mm512_storeu_ps(values.as_mut_ptr(), lo[row]);
                _mm512_storeu_ps(values.as_mut_ptr().add(16), hi[row]);
                t.store(row, &values);
            }
        }
    }
}

/// Plain loops over `[f32; NR]` rows; compiled once per target feature set.
pub(super) mod portable {
    use super::super::{Tile, NR};

    #[inline(always)]
    unsafe fn kernel<const R: usize>(t: &Tile<'_>) {
        let mut acc = [[0.0f32; NR]; R];
        for (row, acc) in acc.iter_mut().enumerate() {
            *acc = t.start(row);
        }
        let mut b = t.b;
        for depth in 0..t.k {
            let panel = &*(b as *const [f32; NR]);
            for (row, acc) in acc.iter_mut().enumerate() {
                let a = *t.a.add(row * t.lda + depth);
                for (sum, &w) in acc.iter_mut().zip(panel) {
                    *sum = a.mul_add(w, *sum);
                }
            }
            b = b.add(NR);
        }
        for (row, values) in acc.iter().enumerate() {
            t.store(row, values);
        }
    }

    unsafe fn by_rows(r: usize, tile: &Tile<'_>) {
        let mut row = 0;
        while row < r {
            let take = 2.min(r - row);
            let shifted = Tile { a: tile.a.add(row * tile.lda), c: tile.c.add(row * tile.ldc), ..*tile };
            if take == 2 {
                kernel::<2>(&shifted);
            } else {
                kernel::<1>(&shifted);
            }
            row += take;
        }
    }

    pub(in crate::cpu::gemm) unsafe fn dispatch(r: usize, tile: &Tile<'_>) {
        by_rows(r, tile)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(in crate::cpu::gemm) unsafe fn dispatch_avx2(r: usize, tile: &Tile<'_>) {
        by_rows(r, tile)
    }
}
