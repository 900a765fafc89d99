//! With the `cuda` feature, compiles rust/kernels/*.cu to PTX for the target GPU (loaded at run
//! time by rust/src/model/cuda_ops/). Without it, does nothing: CPU builds need no CUDA toolkit.
//!
//! The target comes from `CUDA_COMPUTE_CAP` (e.g. 90 for H100/H200; set it on machines without a
//! GPU) or else from `nvidia-smi`; nvcc from `NVCC`, `$CUDA_HOME/bin/nvcc` or the PATH.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const KERNELS: &[&str] = &["encoder_ops", "attention_ops"];
/// Included by every kernel file.
const HEADERS: &[&str] = &["rust/kernels/common.cuh"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo:rerun-if-env-changed=NVCC");
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let arch = compute_cap();
    let nvcc = nvcc();
    for header in HEADERS {
        println!("cargo:rerun-if-changed={header}");
    }
    for name in KERNELS {
        let source = format!("rust/kernels/{name}.cu");
        println!("cargo:rerun-if-changed={source}");
        let ptx = out_dir.join(format!("{name}.ptx"));
        let status = Command::new(&nvcc)
            .args(["--ptx", "-O3", "-std=c++17", &format!("--gpu-architecture=compute_{arch}")])
            .arg("-o")
            .arg(&ptx)
            .arg(&source)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {nvcc:?} to compile {source}: {e}"));
        assert!(status.success(), "{nvcc:?} failed on {source}");
    }
}

fn compute_cap() -> String {
    if let Ok(cap) = env::var("CUDA_COMPUTE_CAP") {
        return cap.trim().replace('.', "");
    }
    let output = Command::new("nvidia-smi")
        .args(["--query-gpu=compute_cap", "--format=csv,noheader"])
        .output()
        .unwrap_or_else(|e| {
            panic!("set CUDA_COMPUTE_CAP (e.g. 90 for H100) or make nvidia-smi available: {e}")
        });
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next().unwrap_or("").trim().replace('.', "");
    assert!(!first.is_empty(), "nvidia-smi reported no GPU: set CUDA_COMPUTE_CAP (e.g. 90 for H100)");
    first
}

fn nvcc() -> PathBuf {
    if let Some(path) = env::var_os("NVCC") {
        return PathBuf::from(path);
    }
    if let Some(home) = env::var_os("CUDA_HOME") {
        let candidate = PathBuf::from(home).join("bin").join("nvcc");
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from("nvcc")
}
