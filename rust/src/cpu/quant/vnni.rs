//! int32 sums of up to 8 rows against one 32-column panel with AVX-512 VNNI (`vpdpbusd`).

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
