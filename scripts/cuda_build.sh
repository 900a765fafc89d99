#!/usr/bin/env bash
# Builds vsr's CUDA wheel (abi3, Python >= 3.11, features python + cuda) on a machine without a
# GPU, for Hopper (compute capability 90). Output: dist/cuda/vsr-<version>-cp311-abi3-linux_x86_64.whl,
# and under dist/cuda/deps the pure-Python runtime dependencies the GPU machine's image lacks
# (pydantic, structlog; CPython 3.12 wheels), so carrying dist/cuda is enough there
# (scripts/gpu_check.sh installs both with pip --no-index).
#
# - The toolchain comes from PyPI (scripts/cuda_toolchain.sh), cached under .tools/cuda.
# - cargo builds into target-cuda/, so the CPU build in target/ stays incremental.
# - The wheel carries only vsr: no CUDA library is bundled ("--auditwheel skip"); cudarc links
#   libcuda/cuBLAS/cuRAND/NVRTC/cudart by soname and the GPU machine supplies them. The stub
#   libcuda and the symlinks in .tools/cuda/link serve the link step only; the check at the end
#   fails the build if anything from .tools ever ends up inside the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
MATURIN=${MATURIN:-.venv/bin/maturin}
OUT_DIR=dist/cuda
CUDA_HOME=$(bash scripts/cuda_toolchain.sh | tail -n 1)
LINK_DIR=$(cd .tools/cuda/link && pwd)

export CUDA_HOME
export PATH="$CUDA_HOME/bin:$PATH"
# No GPU here: name the target instead of asking nvidia-smi. Hopper = H100/H200.
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
# cudarc accepts only the CUDA releases it knows; say which one nvcc is.
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target-cuda}
# The link step resolves CUDA through the stand-ins (no rpath is recorded: the GPU machine's loader
# path supplies the real libraries).
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$LINK_DIR"
export LIBRARY_PATH="$LINK_DIR:$CUDA_HOME/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"

started=$(date +%s)
rm -rf "$OUT_DIR"
"$MATURIN" build --release --features python,cuda --compatibility linux --auditwheel skip \
    --interpreter "$PYTHON" --out "$OUT_DIR"
wheel=$(ls "$OUT_DIR"/vsr-*.whl)

# What went in: the package and nothing of the CUDA toolkit.
if "$PYTHON" -m zipfile -l "$wheel" | grep -Ei 'libcu|libnvrtc|libcublas|libcurand|\.libs/'; then
    echo "error: CUDA libraries were bundled into $wheel" >&2
    exit 1
fi
"$PYTHON" - "$wheel" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    names = [info.filename for info in wheel.infolist()]
    size = sum(info.compress_size for info in wheel.infolist())
print(f"{sys.argv[1]}: {len(names)} files, {size / 2**20:.1f} MiB compressed")
PY
echo "needs at run time: $(objdump -p "$(find "$CARGO_TARGET_DIR/release" -maxdepth 1 -name 'lib_core.so' | head -n 1)" \
    | awk '/NEEDED/ { printf "%s ", $2 }')"

# The GPU image has numpy, pyyaml and torch but not these (KINDS.md's package list); versions as
# requirements-dev.txt pins them, for the image's CPython 3.12.
DEVICE_DEPS=(pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5
    typing-extensions==4.16.0 structlog==26.1.0)
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --dest "$OUT_DIR/deps" "${DEVICE_DEPS[@]}"
du -sh "$OUT_DIR"
echo "built in $(($(date +%s) - started)) s"
