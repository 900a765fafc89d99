"""Batch-1 latency of BERT-base (bf16, 128 tokens, text in -> vector out) in this process."""
import os, statistics, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benches"))
from gpu_models import SHAPES, build_model, texts
from vsr.models import Embedder
d = Path(os.environ.get("MODEL_DIR", "/tmp/vsr-lat/bert-base"))
if not (d / "model.safetensors").exists():
    build_model(SHAPES["bert-base"], d)
e = Embedder.load(d, "cuda:0", dtype="bfloat16", normalize=False)
inputs = texts(128, 1, seed=1)
for _ in range(200):
    e.embed(inputs)
runs = []
for _ in range(5):
    times = []
    for _ in range(400):
        s = time.perf_counter(); e.embed(inputs); times.append(time.perf_counter() - s)
    runs.append(statistics.median(times) * 1e3)
print(f"{os.environ.get('TAG')}: medians of 5 blocks of 400 (ms): " + " ".join(f"{r:.3f}" for r in runs) + f" | median {statistics.median(runs):.3f}", flush=True)
