"""Batch-1 latency of BERT-base (random weights, bf16, one 128-token text, text in -> vector out)
in this process: 200 warm-up calls, then 5 blocks of 400 timed calls, each block's median.

    TAG=name [MODEL_DIR=/tmp/vsr-lat/bert-base] python3 lat.py   (on the GPU machine)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benches/, for gpu_models
from gpu_models import SHAPES, build_model, texts
from vsr.models import Embedder


def main() -> None:
    model_dir = Path(os.environ.get("MODEL_DIR", "/tmp/vsr-lat/bert-base"))
    if not (model_dir / "model.safetensors").exists():
        build_model(SHAPES["bert-base"], model_dir)
    embedder = Embedder.load(model_dir, "cuda:0", dtype="bfloat16", normalize=False)
    inputs = texts(128, 1, seed=1)
    for _ in range(200):
        embedder.embed(inputs)
    blocks = []
    for _ in range(5):
        times = []
        for _ in range(400):
            started = time.perf_counter()
            embedder.embed(inputs)
            times.append(time.perf_counter() - started)
        blocks.append(statistics.median(times) * 1e3)
    shown = " ".join(f"{b:.3f}" for b in blocks)
    print(
        f"{os.environ.get('TAG')}: medians of 5 blocks of 400 (ms): {shown}"
        f" | median {statistics.median(blocks):.3f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
