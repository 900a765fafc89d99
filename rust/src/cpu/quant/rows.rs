//! Activations quantized per row at run time (asymmetric u8, the range including 0).

use std::cell::RefCell;

/// One call's activations quantized per row, reused between calls on a thread.
#[derive(Default)]
pub(super) struct QuantizedRows {
    pub(super) values: Vec<u8>,
    pub(super) scales: Vec<f32>,
    pub(super) zeros: Vec<i32>,
}

thread_local! {
    pub(super) static ROWS: RefCell<QuantizedRows> = RefCell::new(QuantizedRows::default());
}

impl QuantizedRows {
    /// `quantize` in AVX-512 registers (the compiler's version of the loops below spent more
    /// than the AMX product itself): the same values, rounding half to even as `cvtps2dq` does.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,fma")]
    pub(super) unsafe fn quantize_avx512(&mut self, a: &[f32], m: usize, k: usize, stride: usize) {
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
    pub(super) fn quantize(&mut self, a: &[f32], m: usize, k: usize, stride: usize) {
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
