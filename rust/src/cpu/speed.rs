//! Kernel speed on the shapes a BERT layer runs, as tests to run by hand (the minimum time of
//! many calls, so other load on a shared machine falls out):
//! `cargo test --release --lib -- --ignored --nocapture _speed`

use super::gemm::{matmul, Activation, Packed};
use super::quant::QuantizedWeight;
use super::test_values as values;
use super::Isa;

/// `cargo test --release -- --ignored --nocapture gemm_speed`: GFLOP/s of the shapes a BERT
/// layer runs (the minimum time of many calls, so other load on the machine falls out).
#[test]
#[ignore]
fn gemm_speed() {
    let isa = Isa::detect();
    for &(m, n, k) in &[
        (16, 1152, 384),
        (16, 1536, 384),
        (16, 384, 1536),
        (18, 1152, 384),
        (18, 384, 1536),
        (56, 1152, 384),
        (56, 384, 1536),
        (128, 1152, 384),
        (128, 1536, 384),
        (128, 384, 1536),
        (128, 3072, 768),
        (4096, 1536, 384),
    ] {
        let (a, w) = (values(m * k, 1), values(n * k, 2));
        let packed = Packed::from_rows(&w, n, k, k);
        let mut c = vec![0.0f32; m * n];
        let reps = (4e9 / (2.0 * (m * n * k) as f64)).clamp(20.0, 2000.0) as usize;
        // Both kernels in turns, so load on the machine falls on both alike.
        let mut best = [f64::MAX; 2];
        for _ in 0..reps {
            for (balanced, best) in [false, true].into_iter().zip(&mut best) {
                super::gemm::BALANCED.store(balanced, std::sync::atomic::Ordering::Relaxed);
                let start = std::time::Instant::now();
                matmul(isa, &a, k, m, &packed, None, Activation::Identity, &mut c, n, 1);
                *best = best.min(start.elapsed().as_secs_f64());
            }
        }
        let flops = 2.0 * (m * n * k) as f64;
        println!(
            "{m}x{n}x{k}: {:.1} GFLOP/s ({:.1} us); balanced tiles {:.1} GFLOP/s ({:.1} us)",
            flops / best[0] / 1e9,
            best[0] * 1e6,
            flops / best[1] / 1e9,
            best[1] * 1e6
        );
    }
}

/// `cargo test --release -- --ignored --nocapture int8_speed`
#[test]
#[ignore]
fn int8_speed() {
    for &(m, n, k) in &[(16, 1152, 384), (16, 1536, 384), (16, 384, 1536), (128, 1152, 384), (128, 384, 1536)]
    {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 / 17.0 - 0.5).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i % 13) as f32 / 13.0 - 0.5).collect();
        let weight = QuantizedWeight::new(&w, n, k);
        let bias = vec![0.0f32; n];
        let mut c = vec![0.0f32; m * n];
        let mut best = f64::MAX;
        for _ in 0..200 {
            let start = std::time::Instant::now();
            weight.matmul(&a, m, &bias, &mut c, 1);
            best = best.min(start.elapsed().as_secs_f64());
        }
        println!("{m}x{n}x{k}: {:.1} GOP/s ({:.1} us)", 2.0 * (m * n * k) as f64 / best / 1e9, best * 1e6);
    }
}

/// `cargo test --release --lib -- --ignored --nocapture pass_speed`: one pass of a model's
/// products (MiniLM's 6 layers, 42 MB; BERT-base's 12, 340 MB: they come from L3 or memory as in
/// a real pass) at the row counts of short requests, on 1 and 2 threads: without the tiles'
/// prefetch of the next weight chunk (`STREAM`), with it, and with it on weights in huge pages
/// (`HUGE`); median and minimum of many passes.
#[test]
#[ignore]
fn pass_speed() {
    let isa = Isa::detect();
    for (model, layers, hidden) in [("MiniLM", 6usize, 384usize), ("BERT-base", 12, 768)] {
        let shapes = [(3 * hidden, hidden), (hidden, hidden), (4 * hidden, hidden), (hidden, 4 * hidden)];
        let pack = |huge: bool| -> Vec<Packed> {
            super::gemm::HUGE.store(huge, std::sync::atomic::Ordering::Relaxed);
            (0..layers)
                .flat_map(|layer| shapes.iter().map(move |&(n, k)| (layer, n, k)))
                .map(|(layer, n, k)| Packed::from_rows(&values(n * k, layer as u32 + 7), n, k, k))
                .collect()
        };
        let weights = [pack(false), pack(true)];
        for m in [16usize, 18, 64, 128] {
            let a = values(m * 4 * hidden, 1);
            let mut c = vec![0.0f32; m * 4 * hidden];
            let flops: f64 = weights[0].iter().map(|w| 2.0 * (m * w.n() * w.k()) as f64).sum();
            let variants = [
                (1usize, false, false),
                (1, true, false),
                (1, true, true),
                (2, true, false),
                (2, true, true),
            ];
            // The variants in turns, so load on the machine falls on all alike.
            let mut times = vec![Vec::new(); variants.len()];
            for _ in 0..if layers > 6 { 20 } else { 60 } {
                for (&(threads, stream, huge), times) in variants.iter().zip(&mut times) {
                    super::gemm::STREAM.store(stream, std::sync::atomic::Ordering::Relaxed);
                    let start = std::time::Instant::now();
                    super::install(|| {
                        for w in &weights[usize::from(huge)] {
                            matmul(isa, &a, w.k(), m, w, None, Activation::Identity, &mut c, w.n(), threads);
                        }
                    });
                    times.push(start.elapsed().as_secs_f64());
                }
            }
            for (&(threads, stream, huge), times) in variants.iter().zip(&mut times) {
                times.sort_by(f64::total_cmp);
                let (median, best) = (times[times.len() / 2], times[0]);
                println!(
                    "{model} m={m} threads={threads} stream={stream} huge={huge}: median {:.0} us ({:.1} GFLOP/s), \
                     min {:.0} us",
                    median * 1e6,
                    flops / median / 1e9,
                    best * 1e6
                );
            }
        }
    }
}
