#!/usr/bin/env bash
# The one device call behind benches/README.md's "ModernBERT on vsr's kernels" section: install
# the CUDA wheel (as scripts/gpu_bench.sh does), `tests/core -k modernbert` on the fused path and
# on the generic one (VSR_MODERNBERT_GENERIC=1), then bench_gpu.py's ModernBERT section alone
# (`--models` with no names) twice per path, alternating fused / generic, then a kernel profile
# per path (profile_modernbert.py). Logs and each run's bench_gpu.json / .md are packed into
# $OUT/results.tgz (the device returns at most 8 files).
# Run from the repository root with carry ["dist/cuda", ".gpu"].
set -uo pipefail
OUT=${OUT:-/tmp/vsr-modernbert}
WORK=$OUT/work
PYTHON=${PYTHON:-python3}
SITE=/tmp/vsr-site
DEADLINE_S=${DEADLINE_S:-500}
started=$(date +%s)
left() { echo $((DEADLINE_S - ($(date +%s) - started))); }
mkdir -p "$WORK"
trap 'tar czf "$OUT/results.tgz" -C "$WORK" . && rm -rf "$WORK"' EXIT
export PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv
    uptime
} 2>&1 | tee "$WORK/environment.txt"
rm -rf "$SITE"
"$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --target "$SITE" \
    dist/cuda/vsr-*.whl dist/cuda/deps/*.whl || exit 1
export PYTHONPATH=$SITE
nvidia_libs=$("$PYTHON" -c 'import glob, os, sysconfig; r = os.path.join(sysconfig.get_paths()["purelib"], "nvidia"); print(":".join(sorted(glob.glob(os.path.join(r, "*", "lib")))))')
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$nvidia_libs

for generic in 0 1; do
    VSR_TEST_DEVICE=cuda:0 VSR_MODERNBERT_GENERIC=$generic timeout 120 "$PYTHON" -m pytest -q \
        -p no:cacheprovider tests/core -k modernbert 2>&1 | tee "$WORK/tests_generic$generic.log" | tail -n 6
done
for run in 1 2; do
    for generic in 0 1; do
        if (($(left) < 60)); then
            echo "== bench run $run generic=$generic skipped: $(left) s left =="
            continue
        fi
        name=bench_run${run}_generic$generic
        echo "== $name (uptime: $(uptime)) =="
        VSR_MODERNBERT_GENERIC=$generic timeout "$(left)" "$PYTHON" benches/bench_gpu.py --out "$WORK/$name" \
            --models --compile-batches --pool-seconds 0 2>&1 | tee "$WORK/$name.log" | grep "^modernbert-base"
    done
done
# Kernel time per call at 64 x 128 on each path (eager), if time is left.
for generic in 0 1; do
    if (($(left) > 45)); then
        VSR_MODERNBERT_GENERIC=$generic timeout "$(left)" "$PYTHON" \
            benches/results/modernbert_s26/profile_modernbert.py 2>&1 | tee "$WORK/profile_generic$generic.log" \
            | grep -v "^\s*$" | grep -vi "warn" | head -n 20
    fi
done
echo "== done in $(($(date +%s) - started)) s =="
