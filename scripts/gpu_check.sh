#!/usr/bin/env bash
# One call on the GPU machine: install the CUDA wheel, run the core tests on cuda:0, benchmark.
#
#   here:  make build-cuda                      (dist/cuda: the wheel + pure-Python deps)
#   there: bash scripts/gpu_check.sh            (device run with carry: ["dist/cuda"])
#
# Steps, each logged under $OUT (the files that come back):
#   1. environment: GPU, driver, nvcc, torch; the wheel installed with pip --no-index --target.
#   2. the first-request warm-up test, alone in a fresh process (a cold kernel JIT would show).
#   3. tests/core on cuda:0 (VSR_TEST_DEVICE): fp32 parity <= 1e-4 against the committed CPU
#      references, float16/bfloat16 bounds and no NaN (tests/core/test_device.py). The MiniLM
#      parity tests need the 90 MB packaged model, which cannot travel; they are deselected.
#   4. benches/bench_gpu.py: vsr against PyTorch eager / CUDA graph / torch.compile.
# The summary table comes last. SKIP_BENCH=1 stops after the tests; BENCH_ARGS adds arguments;
# PROFILE=1 also lists the CUDA kernels of a vsr forward (PROFILE_ARGS for benches/profile_gpu.py).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/vsr-gpu-check}
SITE=/tmp/vsr-site
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
started=$(date +%s)

{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
    nvcc --version 2>/dev/null | tail -n 1
    "$PYTHON" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, torch.version.cuda)'
    nproc
} >"$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"

rm -rf "$SITE"
wheel=$(ls dist/cuda/vsr-*.whl 2>/dev/null | head -n 1)
if [[ -z $wheel ]]; then
    echo "no wheel under dist/cuda: run 'make build-cuda' and carry dist/cuda" >&2
    exit 1
fi
"$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --target "$SITE" \
    "$wheel" dist/cuda/deps/*.whl || exit 1
export PYTHONPATH=$SITE
# cuBLAS, cuRAND, NVRTC and the runtime come from the image; where they sit only inside PyTorch's
# nvidia packages and not on the loader path, add those folders after whatever is there.
nvidia_libs=$("$PYTHON" - <<'PY'
import glob, os, sysconfig
root = os.path.join(sysconfig.get_paths()["purelib"], "nvidia")
print(":".join(sorted(glob.glob(os.path.join(root, "*", "lib")))))
PY
)
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$nvidia_libs
"$PYTHON" -c 'from vsr import _core; assert _core.cuda_available(), "not a CUDA build"; print("vsr", _core.__version__, "CUDA build")' \
    || { echo "the CUDA wheel does not import; see above" >&2; exit 1; }

export VSR_TEST_DEVICE=cuda:0
"$PYTHON" -m pytest -q -p no:cacheprovider tests/core/test_device.py -k first_request \
    2>&1 | tee "$OUT/tests_warmup.log"
warmup_status=${PIPESTATUS[0]}
"$PYTHON" -m pytest -q -p no:cacheprovider tests/core -k "not minilm" \
    2>&1 | tee "$OUT/tests_core.log"
core_status=${PIPESTATUS[0]}
# The fused attention kernel (on for single texts by default) for calls of up to 8 texts, against
# transformers and the unfused path.
VSR_FUSED_ATTENTION_MAX_BATCH=8 "$PYTHON" -m pytest -q -p no:cacheprovider tests/core/test_cuda_attention.py \
    2>&1 | tee "$OUT/tests_fused.log"
fused_status=${PIPESTATUS[0]}
tests_done=$(date +%s)

# PROFILE=1: every CUDA kernel of a vsr forward (benches/profile_gpu.py), before the benchmark.
if [[ ${PROFILE:-0} == 1 ]]; then
    "$PYTHON" benches/profile_gpu.py ${PROFILE_ARGS:-} 2>&1 | tee "$OUT/profile.log"
fi

bench_status=skipped
if [[ ${SKIP_BENCH:-0} != 1 ]]; then
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of words on purpose
    "$PYTHON" benches/bench_gpu.py --out "$OUT" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
    bench_status=${PIPESTATUS[0]}
fi

echo
echo "== summary ($(($(date +%s) - started)) s; tests $((tests_done - started)) s) =="
echo "warm-up test: exit $warmup_status; $(tail -n 1 "$OUT/tests_warmup.log")"
echo "core tests on cuda:0: exit $core_status; $(tail -n 1 "$OUT/tests_core.log")"
echo "fused attention tests: exit $fused_status; $(tail -n 1 "$OUT/tests_fused.log")"
echo "benchmark: exit $bench_status"
[[ -f $OUT/bench_gpu.md ]] && cat "$OUT/bench_gpu.md"
[[ $warmup_status == 0 && $core_status == 0 && $fused_status == 0 && $bench_status =~ ^(0|skipped)$ ]]
