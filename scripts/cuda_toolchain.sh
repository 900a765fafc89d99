#!/usr/bin/env bash
# Installs what `make build-cuda` needs to compile vsr's CUDA build on a machine without a GPU, all
# from PyPI, into an ignored folder (.tools/cuda): nvcc 13.0 with its NVVM, CRT headers, CCCL and
# runtime (to compile candle's kernels to PTX), and cuBLAS, cuRAND and NVRTC (link step only).
#
# Why these pins: candle loads its kernels as PTX; nvcc >= 13.1 emits PTX that the GPU machine's
# 580 driver cannot load, so nvcc stays on 13.0. cudarc links CUDA dynamically by soname
# (libcublas.so.13 ...), so the libraries found at run time are the GPU machine's own.
#
# Link-time stand-ins live in .tools/cuda/link (unversioned symlinks, and a stub libcuda.so.1 whose
# symbols are generated from cudarc's driver bindings); they are never packed into the wheel.
# Rerunning does nothing once the stamp records these pins.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=.tools/cuda
PYTHON=${PYTHON:-python3}
PINS=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-nvrtc==13.0.88
    nvidia-cublas==13.0.2.14
    nvidia-curand==10.4.0.35
)
STAMP=$ROOT/toolchain.stamp

if [[ "$(cat "$STAMP" 2>/dev/null)" != "${PINS[*]}" ]]; then
    echo "cuda toolchain: installing ${PINS[*]} into $ROOT/site"
    rm -rf "$ROOT/site"
    mkdir -p "$ROOT/site"
    "$PYTHON" -m pip install --quiet --no-deps --no-compile --only-binary=:all: \
        --target "$ROOT/site" "${PINS[@]}"
    printf '%s' "${PINS[*]}" >"$STAMP"
fi

CUDA_HOME=$(cd "$ROOT/site/nvidia/cu13" && pwd)
# nvcc looks for cicc under ../nvvm/bin and for headers under ../include: the wheels put all of
# them under nvidia/cu13, which is the layout of a toolkit install already.
test -x "$CUDA_HOME/bin/nvcc" || { echo "nvcc missing under $CUDA_HOME/bin" >&2; exit 1; }
test -x "$CUDA_HOME/nvvm/bin/cicc" || { echo "cicc missing under $CUDA_HOME/nvvm/bin" >&2; exit 1; }

LINK=$ROOT/link
mkdir -p "$LINK"
# Unversioned names for the linker (wheels ship only libcublas.so.13 and friends).
for lib in cublas cublasLt curand nvrtc cudart; do
    versioned=$(find "$CUDA_HOME/lib" -maxdepth 1 -name "lib$lib.so.*" | sort | head -n 1)
    test -n "$versioned" || { echo "lib$lib.so.* not found under $CUDA_HOME/lib" >&2; exit 1; }
    ln -sf "$(cd "$(dirname "$versioned")" && pwd)/$(basename "$versioned")" "$LINK/lib$lib.so"
done
# A stub libcuda.so (soname libcuda.so.1) so the link step can resolve the driver API: the driver is
# never on a build machine. Its symbols are every driver entry point in cudarc's bindings; at run
# time the loader binds libcuda.so.1 from the GPU machine's driver instead.
CUDARC_DIR=$(cargo metadata --quiet --format-version 1 --features cuda |
    "$PYTHON" -c 'import json, sys, pathlib
packages = json.load(sys.stdin)["packages"]
print(next(pathlib.Path(p["manifest_path"]).parent for p in packages if p["name"] == "cudarc"))')
BINDINGS=$CUDARC_DIR/src/driver/sys/mod.rs
if [[ ! -f $LINK/libcuda.so.1 || $BINDINGS -nt $LINK/libcuda.so.1 ]]; then
    grep -oE '^\s+fn cu[A-Za-z0-9_]+\(' "$BINDINGS" | sed -E 's/^\s+fn (cu[A-Za-z0-9_]+)\(/\1/' |
        sort -u | awk '{ printf "int %s(void) { return 999; }\n", $1 }' >"$LINK/libcuda_stub.c"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$LINK/libcuda.so.1" "$LINK/libcuda_stub.c"
    ln -sf libcuda.so.1 "$LINK/libcuda.so"
fi
echo "$CUDA_HOME"
