//! A weight packed once, at load, into the panels the product kernels stream: `NR` output
//! columns at a time, depth-major within a panel.

use super::NR;

/// Whether packed weights ask for huge pages. Off by default: near idle on the Intel Xeon 2-core
/// box (pass_speed, in turns) they made BERT-base's few-row passes faster (16 rows, 2 threads:
/// 29.1 -> 21.4 ms) but MiniLM's, which the default bundle runs, slower (16 rows: 1.97 -> 2.55 ms
/// on 2 threads, 2.93 -> 4.07 ms on 1; 18 rows likewise); `speed.rs` turns it on to measure.
pub(crate) static HUGE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Ask Linux to back `data`'s whole 2 MiB pages with huge pages (transparent huge pages are often
/// `madvise`-only). A pass streams every weight once: with 4 KiB pages that is a TLB miss every
/// 4 KiB, and a page walk costs more in a virtual machine. Called before the pages are first
/// written (a fresh zeroed allocation is not yet backed), so the faults bring huge pages.
fn advise_huge_pages(data: &[f32]) {
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: std::ffi::c_int) -> std::ffi::c_int;
        }
        const MADV_HUGEPAGE: std::ffi::c_int = 14;
        const HUGE_PAGE: usize = 2 << 20;
        let (start, end) = (data.as_ptr() as usize, data.as_ptr() as usize + std::mem::size_of_val(data));
        let (first, last) = (start.next_multiple_of(HUGE_PAGE), end / HUGE_PAGE * HUGE_PAGE);
        if last > first {
            // SAFETY: the range lies inside `data`'s allocation; the advice changes no contents.
            // A failure (no THP in this kernel) leaves ordinary pages: nothing to handle.
            unsafe { madvise(first as *mut std::ffi::c_void, last - first, MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    let _ = data;
}

/// A right-hand side packed for `matmul`: `n` output columns of depth `k`, as `ceil(n / NR)`
/// panels of `k x NR` values (column-padded with zeros).
pub(crate) struct Packed {
    pub(super) n: usize,
    pub(super) k: usize,
    pub(super) data: Vec<f32>,
}

impl Packed {
    /// From a weight in PyTorch's (out = n, in = k) row-major layout, row `j` at `w[j * ld..]`.
    pub(crate) fn from_rows(w: &[f32], n: usize, k: usize, ld: usize) -> Self {
        let mut packed = Packed::zeros(n, k);
        if HUGE.load(std::sync::atomic::Ordering::Relaxed) {
            advise_huge_pages(&packed.data);
        }
        packed.fill_from_rows(w, ld);
        packed
    }

    pub(crate) fn zeros(n: usize, k: usize) -> Self {
        Packed { n, k, data: vec![0.0; n.div_ceil(NR) * k * NR] }
    }

    /// Reshape to (n, k) reusing the allocation (scratch for attention).
    pub(crate) fn reset(&mut self, n: usize, k: usize) {
        self.n = n;
        self.k = k;
        self.data.clear();
        self.data.resize(n.div_ceil(NR) * k * NR, 0.0);
    }

    pub(crate) fn fill_from_rows(&mut self, w: &[f32], ld: usize) {
        let k = self.k;
        for (panel, chunk) in self.data.chunks_exact_mut(k * NR).enumerate() {
            for c in 0..NR.min(self.n - panel * NR) {
                let row = &w[(panel * NR + c) * ld..][..k];
                for (depth, &value) in row.iter().enumerate() {
                    chunk[depth * NR + c] = value;
                }
            }
        }
    }

    pub(crate) fn fill_from_columns(&mut self, b: &[f32], ld: usize) {
        let (n, k) = (self.n, self.k);
        for (panel, chunk) in self.data.chunks_exact_mut(k * NR).enumerate() {
            let (start, width) = (panel * NR, NR.min(n - panel * NR));
            for depth in 0..k {
                chunk[depth * NR..][..width].copy_from_slice(&b[depth * ld + start..][..width]);
            }
        }
    }

    pub(crate) fn k(&self) -> usize {
        self.k
    }

    #[cfg(test)]
    pub(crate) fn n(&self) -> usize {
        self.n
    }

    pub(super) fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }
}
