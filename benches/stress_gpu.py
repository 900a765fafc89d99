"""Concurrency check on a GPU: threads share one encoder and call it with mixed batch sizes.

Each thread runs a random-weight BERT (benches/gpu_models.py) for ``--seconds``; a watchdog
prints every thread's call count each second and dumps every Python stack if no call finished
for ``--stall`` seconds, then exits non-zero. Outputs are checked against a single-threaded
reference, so a race that corrupts results fails too.

    PYTHONPATH=$SITE:benches python3 benches/stress_gpu.py --threads 4 --seconds 20
"""

from __future__ import annotations

import argparse
import faulthandler
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from gpu_models import SHAPES, build_model, texts, write_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="bert-base", choices=list(SHAPES))
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--stall", type=float, default=20.0)
    args = parser.parse_args()
    from vsr.models import Embedder

    directory = Path(tempfile.mkdtemp(prefix="vsr-stress-")) / args.model
    build_model(SHAPES[args.model], directory)
    write_tokenizer(directory)
    embedder = Embedder.load(directory, device="cuda:0")
    batches = [
        texts(seq, size, seed=size * 1000 + seq)
        for size, seq in ((1, 128), (31, 128), (7, 40), (64, 300))
    ]
    expected = [embedder.embed(batch) for batch in batches]
    counts = [0] * args.threads
    failures: list[str] = []
    stop = time.perf_counter() + args.seconds

    def worker(index: int) -> None:
        n = index
        while time.perf_counter() < stop and not failures:
            which = n % len(batches)
            got = embedder.embed(batches[which])
            error = float(np.abs(got - expected[which]).max())
            if error > 2e-2:
                failures.append(f"thread {index}, batch {which}: max abs difference {error:.3g}")
            counts[index] += 1
            n += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    last_total, last_change = 0, time.perf_counter()
    while any(thread.is_alive() for thread in threads):
        time.sleep(1.0)
        total = sum(counts)
        print(
            f"{time.perf_counter() - stop + args.seconds:6.1f} s calls per thread {counts}",
            flush=True,
        )
        if total != last_total:
            last_total, last_change = total, time.perf_counter()
        elif time.perf_counter() - last_change > args.stall:
            print(f"STALL: no call finished for {args.stall} s", flush=True)
            faulthandler.dump_traceback(all_threads=True)
            sys.exit(2)
    if failures:
        print("FAILED:", *failures, sep="\n  ")
        sys.exit(1)
    print(f"ok: {sum(counts)} calls on {args.threads} threads, outputs match the reference")


if __name__ == "__main__":
    main()
