//! AMX: `tdpbusd` multiplies a tile of 16 rows x 64 u8 by one of 64 depths x 16 columns of i8
//! (in the panels' groups of four depths, so the packed panels serve as they are) into 16 x 16
//! int32, 16 K multiply-adds per instruction. Rust has no AMX intrinsics on stable: inline asm.

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
