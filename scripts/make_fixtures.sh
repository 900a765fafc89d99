#!/usr/bin/env bash
# Regenerate tests/fixtures/ (`make fixtures`) with the reference venv (scripts/reference_venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="$(bash scripts/reference_venv.sh)"
# CPU only and offline: the reference numbers must not depend on a GPU or on anything downloaded.
CUDA_VISIBLE_DEVICES="" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    "$VENV/bin/python" scripts/make_fixtures.py
