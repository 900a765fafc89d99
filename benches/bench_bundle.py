"""One encoder pass for every default signal, against one pass per signal.

The default config reads three heads of the `vsr-default` bundle (embedding, domain, jailbreak)
and the `vsr-pii` token classifier. This times, per request (batch 1, CPU):

- bundle: one MiniLM pass serving all three heads (what vsr does);
- separate: the same three heads run as three separate passes (what one model per signal costs);
- the PII model's own pass, which comes on top in both cases (a different encoder);
- the jailbreak head's n-gram expert (character and word n-grams; Python, no encoder pass), already
  inside the bundle figure and shown alone so its share is visible.

Run: `.venv/bin/python benches/bench_bundle.py` (after `make setup build`).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

PROMPTS: dict[str, str | None] = {
    "short (~16 tokens)": "What is the derivative of x^3 + 2x with respect to x?",
    "medium (~60 tokens)": (
        "Our contract says the seller must deliver the goods by March, but the shipment arrived "
        "in May and half of it was damaged. The seller claims the delay was caused by a strike. "
        "Can we cancel the contract and get our deposit back, and what should we say first?"
    ),
    "long (~1,900 chars)": None,  # data/pii/filler.txt, a multi-paragraph support email
}


def median_ms(call: Callable[[], object], repeats: int) -> float:
    for _ in range(3):
        call()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    import vsr
    from vsr.models import EncoderBundle

    bundle = EncoderBundle.load("vsr-default")
    pii = EncoderBundle.load("vsr-pii")
    heads = ["embedding", "domain", "jailbreak"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical cores, {platform.system()}")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"versions: vsr {vsr.__version__}, Python {platform.python_version()}")
    print()
    expert, _ = bundle.ngram_experts["jailbreak"]
    filler = Path(__file__).resolve().parents[1] / "data" / "pii" / "filler.txt"
    print(
        "| prompt | tokens | bundle: 1 pass, 3 heads | separate: 3 passes | ratio | PII pass "
        "| jailbreak n-grams |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, text in PROMPTS.items():
        texts = [text if text is not None else filler.read_text(encoding="utf-8")]
        tokens = bundle.count_tokens(texts)[0]
        together = median_ms(lambda t=texts: bundle.run(t, heads), args.repeats)
        apart = median_ms(lambda t=texts: [bundle.run(t, [head]) for head in heads], args.repeats)
        pii_ms = median_ms(lambda t=texts: pii.run(t), args.repeats)
        ngram_ms = median_ms(lambda t=texts: expert.log_probabilities(t), args.repeats)
        print(
            f"| {name} | {tokens} | {together:.2f} ms | {apart:.2f} ms | "
            f"{apart / together:.2f}x | {pii_ms:.2f} ms | {ngram_ms:.2f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
