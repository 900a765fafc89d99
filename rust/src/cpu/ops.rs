//! Element-wise and row work of a BERT layer on plain slices, vectorised: the exact (erf) GELU,
//! residual add + layer norm, and the masked softmax of attention. candle's erf is scalar and
//! each of its ops is a pass over memory with an allocation; here each is one pass, in place.
//!
//! Each operation is written once as plain loops (lanes in arrays, so float sums vectorise without
//! reordering licence) and compiled per instruction set; `Isa` picks the version at run time.

use super::Isa;

/// Lanes per partial sum: one AVX-512 register.
const LANES: usize = 16;

/// Emit `$name(isa, args)` that runs `$body_fn(args)` compiled for the detected instruction set.
macro_rules! versions {
    ($(#[$doc:meta])* $name:ident => $body_fn:ident ($($arg:ident : $ty:ty),*)) => {
        $(#[$doc])*
        pub(crate) fn $name(isa: Isa, $($arg: $ty),*) {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => {
                    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,fma")]
                    unsafe fn run($($arg: $ty),*) { $body_fn($($arg),*) }
                    // SAFETY: Isa::Avx512 is only chosen when the CPU reports these features.
                    unsafe { run($($arg),*) }
                }
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => {
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn run($($arg: $ty),*) { $body_fn($($arg),*) }
                    // SAFETY: Isa::Avx2 is only chosen when the CPU reports these features.
                    unsafe { run($($arg),*) }
                }
                _ => $body_fn($($arg),*),
            }
        }
    };
}

/// e^x for x in float32 range, relative error ~2e-7 (Cephes' polynomial; no libm call, so it
/// vectorises). Below -87.3 it returns ~1e-38, which softmax treats as 0.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Comparisons, not f32::clamp/max: those keep NaN rules that stop vectorisation.
    let x = if x < -87.3 { -87.3 } else { x };
    let x = if x > 88.7 { 88.7 } else { x };
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let r2 = r * r;
    let mut p = 1.987_569_2e-4f32;
    p = p.mul_add(r, 1.398_2e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let y = p.mul_add(r2, r) + 1.0;
    // 2^n from n's bits: adding 1.5 * 2^23 puts the integer n in the mantissa (|n| < 128), with
    // integer ops that vectorise, where `n as i32` saturates lane by lane.
    const MAGIC: f32 = 12_582_912.0;
    let integer = (n + MAGIC).to_bits().wrapping_sub(MAGIC.to_bits());
    y * f32::from_bits(integer.wrapping_add(127) << 23)
}

/// erf(x), absolute error below 1.5e-7 (Abramowitz and Stegun 7.1.26).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / a.mul_add(0.327_591_1, 1.0);
    let mut p = 1.061_405_4f32;
    p = p.mul_add(t, -1.453_152);
    p = p.mul_add(t, 1.421_413_8);
    p = p.mul_add(t, -0.284_496_74);
    p = p.mul_add(t, 0.254_829_6);
    let y = 1.0 - p * t * exp(-a * a);
    y.copysign(x)
}

#[inline(always)]
fn gelu_body(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[inline(always)]
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

#[inline(always)]
fn max(values: &[f32]) -> f32 {
    let larger = |m: f32, v: f32| if v > m { v } else { m };
    let mut lanes = [f32::MIN; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder().iter().fold(f32::MIN, |m, &v| larger(m, v));
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = larger(*lane, v);
        }
    }
    lanes.iter().fold(rest, |m, &v| larger(m, v))
}

/// Rows of `x` (width `gamma.len()`) become LayerNorm(x + residual) in place.
#[inline(always)]
fn add_norm_body(x: &mut [f32], residual: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let width = gamma.len();
    for (row, res) in x.chunks_exact_mut(width).zip(residual.chunks_exact(width)) {
        for (v, &r) in row.iter_mut().zip(res) {
            *v += r;
        }
        norm_row(row, gamma, beta, eps);
    }
}

#[inline(always)]
fn norm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let width = row.len() as f32;
    let mean = sum(row) / width;
    let mut lanes = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().map(|v| (v - mean) * (v - mean)).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += (v - mean) * (v - mean);
        }
    }
    let variance = (lanes.iter().sum::<f32>() + rest) / width;
    let inverse = 1.0 / (variance + eps).sqrt();
    for ((v, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * inverse * g + b;
    }
}

/// Rows of `scores` (width `bias.len()`, stride `ld`) become softmax(scores * scale + bias).
#[inline(always)]
fn softmax_body(scores: &mut [f32], ld: usize, rows: usize, bias: &[f32], scale: f32) {
    let width = bias.len();
    for r in 0..rows {
        let row = &mut scores[r * ld..r * ld + width];
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = v.mul_add(scale, b);
        }
        let top = max(row);
        for v in row.iter_mut() {
            *v = exp(*v - top);
        }
        let inverse = 1.0 / sum(row);
        for v in row.iter_mut() {
            *v *= inverse;
        }
    }
}

versions!(
    /// The exact GELU, 0.5 x (1 + erf(x / sqrt 2)), in place.
    gelu => gelu_body(x: &mut [f32])
);
versions!(
    /// LayerNorm(x + residual) per row, in place.
    add_norm => add_norm_body(x: &mut [f32], residual: &[f32], gamma: &[f32], beta: &[f32], eps: f32)
);
versions!(
    /// Masked, scaled softmax over attention score rows, in place.
    softmax => softmax_body(scores: &mut [f32], ld: usize, rows: usize, bias: &[f32], scale: f32)
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_are_accurate() {
        for i in -2000..=2000 {
            let x = i as f32 / 100.0;
            let (got, want) = (exp(x), x.exp());
            assert!(((got - want) / want).abs() < 5e-7, "exp({x}) = {got}, want {want}");
            let (got, want) = (erf(x) as f64, libm_erf(x as f64));
            assert!((got - want).abs() < 5e-7, "erf({x}) = {got}, want {want}");
        }
        assert!(exp(-1e30) < 1e-37);
    }

    /// erf by its series / continued fraction in f64, as a reference.
    fn libm_erf(x: f64) -> f64 {
        // Sum the Maclaurin series for |x| < 3; beyond, erf is 1 to f32 precision.
        if x.abs() >= 4.0 {
            return x.signum();
        }
        let (mut term, mut total, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * total.abs().max(1e-300) {
            n += 1.0;
            term *= -x * x / n;
            total += term / (2.0 * n + 1.0);
        }
        total * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn every_version_agrees() {
        let values: Vec<f32> = (0..100).map(|i| (i as f32 - 50.0) / 7.0).collect();
        let mut reference = values.clone();
        gelu(Isa::Portable, &mut reference);
        for isa in Isa::available() {
            let mut got = values.clone();
            gelu(isa, &mut got);
            for (a, b) in got.iter().zip(&reference) {
                assert!((a - b).abs() < 1e-6);
            }
        }
    }
}
