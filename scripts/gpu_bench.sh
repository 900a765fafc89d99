#!/usr/bin/env bash
# One device call for issue 14's GPU targets: install the CUDA wheel, the core tests on cuda:0,
# benches/bench_gpu.py twice (the targets must hold in repeated runs), and benches/bench_pool.py
# on the GPU for the default bundle. Everything stays within a deadline so a hang cannot eat the
# lease; results are packed into $OUT/results.tgz (the device returns at most 8 files).
#
#   here:  make build-cuda; mkdir -p .gpu/minilm; cp <all-MiniLM-L6-v2>/{tokenizer,config}.json .gpu/minilm
#   there: bash scripts/gpu_bench.sh     (device run, carry: ["dist/cuda", ".gpu"])
#
# DEADLINE_S (default 540): no step starts after it; RUNS (default 2): bench_gpu runs;
# SKIP_TESTS=1 skips the tests; SKIP_POOL=1 skips bench_pool.py; BENCH_ARGS adds arguments to
# bench_gpu.py; COMPARE_ENV (e.g. "VSR_FUSED_ATTENTION_MAX_BATCH=0") runs the profile a second
# time under those settings, into profile_compare.log, for a before/after in one call; with
# COMPARE_BENCH=1 each bench run is also followed by one under COMPARE_ENV (run<N>_compare).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/vsr-gpu-bench}
WORK=$OUT/work
SITE=/tmp/vsr-site
PYTHON=${PYTHON:-python3}
DEADLINE_S=${DEADLINE_S:-540}
RUNS=${RUNS:-2}
mkdir -p "$WORK"
export PYTHONUNBUFFERED=1
started=$(date +%s)
left() { echo $((DEADLINE_S - ($(date +%s) - started))); }
pack() {
    tar czf "$OUT/results.tgz" -C "$WORK" . && rm -rf "$WORK"
}
trap pack EXIT

{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv
    grep -m1 "model name" /proc/cpuinfo
    nproc
    uptime
    "$PYTHON" -c 'import sys, torch, transformers; print(sys.version.split()[0], "torch", torch.__version__, torch.version.cuda, "transformers", transformers.__version__)'
} 2>&1 | tee "$WORK/environment.txt"

rm -rf "$SITE"
wheel=$(ls dist/cuda/vsr-*.whl 2>/dev/null | head -n 1)
[[ -n $wheel ]] || { echo "no wheel under dist/cuda" >&2; exit 1; }
"$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --target "$SITE" \
    "$wheel" dist/cuda/deps/*.whl || exit 1
export PYTHONPATH=$SITE
nvidia_libs=$("$PYTHON" - <<'PY'
import glob, os, sysconfig
root = os.path.join(sysconfig.get_paths()["purelib"], "nvidia")
print(":".join(sorted(glob.glob(os.path.join(root, "*", "lib")))))
PY
)
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$nvidia_libs
"$PYTHON" -c 'from vsr import _core; assert _core.cuda_available(); print("vsr", _core.__version__, "CUDA build")' \
    || { echo "the CUDA wheel does not import" >&2; exit 1; }

# A random-weight encoder of all-MiniLM-L6-v2's shape with its real tokenizer (the packaged
# 90 MB weights cannot travel), for the default bundle's heads and branch.
ENCODER=/tmp/minilm-random
"$PYTHON" - "$ENCODER" <<'PY' 2>&1 | tail -n 2
import shutil, sys, torch
from transformers import BertConfig, BertModel
target = sys.argv[1]
torch.manual_seed(0)
config = BertConfig.from_pretrained(".gpu/minilm")
BertModel(config, add_pooling_layer=False).eval().save_pretrained(target, safe_serialization=True)
shutil.copy(".gpu/minilm/tokenizer.json", target)
print("random MiniLM-shaped encoder in", target)
PY

export VSR_TEST_DEVICE=cuda:0
if [[ ${SKIP_TESTS:-0} != 1 ]]; then
    timeout 60 "$PYTHON" -m pytest -q -p no:cacheprovider tests/core/test_device.py -k first_request \
        2>&1 | tee "$WORK/tests_warmup.log" | tail -n 3
    timeout 170 "$PYTHON" -m pytest -q -p no:cacheprovider tests/core -k "not minilm" \
        2>&1 | tee "$WORK/tests_core.log" | tail -n 15
    # The fused attention kernel is on for single texts by default; this run turns it on for
    # calls of up to 8 texts, so its tests compare it with transformers and the unfused path.
    VSR_FUSED_ATTENTION_MAX_BATCH=8 timeout 120 "$PYTHON" -m pytest -q -p no:cacheprovider \
        tests/core/test_cuda_attention.py 2>&1 | tee "$WORK/tests_fused.log" | tail -n 5
fi
unset VSR_TEST_DEVICE

# The pool on the GPU, default bundle, 1/16/128 concurrent single-text clients.
if [[ ${SKIP_POOL:-0} != 1 ]] && (($(left) > 60)); then
    timeout 90 "$PYTHON" benches/bench_pool.py --device cuda:0 --encoder "$ENCODER" --seconds 4 \
        --label "H200 $(date -u +%H:%M)" 2>&1 | tee "$WORK/pool.log" | grep -v '^\s*$' | tail -n 8
fi

# bench NAME [VAR=value ...]: one bench_gpu.py run into $WORK/NAME, under the given settings.
bench() {
    local name=$1
    shift
    # shellcheck disable=SC2086 # BENCH_ARGS is a list of words on purpose
    timeout "$(left)" env "$@" "$PYTHON" benches/bench_gpu.py --out "$WORK/$name" --compile-batches \
        --pool-seconds 1.0 ${BENCH_ARGS:-} 2>&1 | tee "$WORK/$name.log" \
        | grep -vE '^\s*$|Writing model shards|warn' | tail -n 70
}
for run in $(seq 1 "$RUNS"); do
    budget=$(left)
    if ((budget < 100)); then
        echo "== bench run $run skipped: ${budget} s left before the deadline =="
        continue
    fi
    echo "== bench run $run (limit ${budget} s) =="
    bench "run$run"
    if [[ -n ${COMPARE_ENV:-} && ${COMPARE_BENCH:-0} == 1 ]] && (($(left) > 100)); then
        echo "== bench run $run with $COMPARE_ENV (limit $(left) s) =="
        # shellcheck disable=SC2086 # COMPARE_ENV is a list of NAME=value words on purpose
        bench "run${run}_compare" $COMPARE_ENV
    fi
done
# Kernel profile with each call's timeline (before the first kernel, GPU work, gaps, after).
if (($(left) > 50)); then
    timeout "$(($(left) < 90 ? $(left) : 90))" "$PYTHON" benches/profile_gpu.py --batches "${PROFILE_BATCHES:-1,64,256}" \
        2>&1 | tee "$WORK/profile.log" | grep -E "^==|timeline" | head -n 12
fi
if [[ -n ${COMPARE_ENV:-} ]] && (($(left) > 40)); then
    echo "== profile with $COMPARE_ENV =="
    # shellcheck disable=SC2086 # COMPARE_ENV is a list of NAME=value words on purpose
    timeout "$(($(left) < 90 ? $(left) : 90))" env $COMPARE_ENV "$PYTHON" benches/profile_gpu.py \
        --batches "${PROFILE_BATCHES:-1,64,256}" 2>&1 | tee "$WORK/profile_compare.log" | grep -E "^==|timeline" | head -n 12
fi
echo "== done in $(($(date +%s) - started)) s =="
