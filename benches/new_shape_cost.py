"""What a new input shape's first call costs on the GPU, and how many kernels it loads lazily.

    python3 benches/new_shape_cost.py [--ladder] [--shapes 20]

A fresh process loads a random-weight BERT-base (the load runs vsr's warm-up); with `--ladder`
it then calls the model once on each shape of a ladder (texts 1-256 x tokens 16-512). Then, for
random (texts, tokens) shapes never called before, it times the first call and the second and
counts CUDA's "Lazy Function Loading" events in the first (torch.profiler records them through
CUPTI): each is a kernel loaded from a library's fat binary on first use, which costs
milliseconds. Run each variant in its own process.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from gpu_models import SHAPES, build_model, texts

LADDER_TEXTS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LADDER_TOKENS = (16, 32, 64, 128, 256, 512)


def lazy_loads(embed, inputs: list[str]) -> tuple[float, int]:
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as trace:
        started = time.perf_counter()
        embed(inputs)
        wall_ms = (time.perf_counter() - started) * 1e3
    return wall_ms, sum(1 for e in trace.events() if e.name == "Lazy Function Loading")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ladder", action="store_true")
    parser.add_argument("--shapes", type=int, default=20)
    parser.add_argument("--model", default="bert-base", choices=sorted(SHAPES))
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    from vsr.models import Embedder

    directory = Path(tempfile.mkdtemp(prefix="vsr-shapes-")) / args.model
    build_model(SHAPES[args.model], directory)
    started = time.perf_counter()
    embedder = Embedder.load(directory, "cuda:0", dtype=args.dtype, normalize=False)
    load_ms = (time.perf_counter() - started) * 1e3
    with profile(activities=[ProfilerActivity.CUDA]):
        torch.zeros(1, device="cuda")  # CUPTI's start-up, outside every measured call
    ladder_ms = 0.0
    if args.ladder:
        started = time.perf_counter()
        for count in LADDER_TEXTS:
            for tokens in LADDER_TOKENS:
                if count * tokens <= 32_768:
                    embedder.embed(texts(tokens, count, seed=count * 1000 + tokens))
        torch.cuda.synchronize()
        ladder_ms = (time.perf_counter() - started) * 1e3
    rng = random.Random(7)
    rows = []
    for index in range(args.shapes):
        count = rng.choice((1, 1, 2, 3, 5, 8, 11, 17, 24, 40, 64, 100))
        tokens = rng.randint(12, 300)
        inputs = texts(tokens, count, seed=index + 50_000)
        first_ms, loads = lazy_loads(embedder.embed, inputs)
        second_ms, again = lazy_loads(embedder.embed, inputs)
        rows.append((count, tokens, first_ms, loads, second_ms, again))
    label = args.label or ("ladder" if args.ladder else "plain")
    print(f"== {label}: load {load_ms:.0f} ms, ladder {ladder_ms:.0f} ms")
    for count, tokens, first_ms, loads, second_ms, again in rows:
        print(
            f"texts {count:3d} x {tokens:3d} tok: first {first_ms:7.1f} ms ({loads:2d} lazy loads),"
            f" second {second_ms:6.1f} ms ({again} lazy)"
        )
    total_first = sum(r[2] for r in rows)
    total_second = sum(r[4] for r in rows)
    total_loads = sum(r[3] for r in rows)
    print(
        f"sum: first calls {total_first:.0f} ms, second calls {total_second:.0f} ms, "
        f"{total_loads} lazy loads"
    )
    print(json.dumps({"label": label, "load_ms": load_ms, "ladder_ms": ladder_ms, "rows": rows}))


if __name__ == "__main__":
    main()
