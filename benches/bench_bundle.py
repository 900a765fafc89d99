"""One encoder pass for every default signal, against one pass per signal.

The default config reads three heads of the `vsr-default` bundle (embedding, domain, jailbreak)
and the `vsr-pii` token classifier. This times, per request (batch 1, CPU):

- bundle: one MiniLM pass serving all three heads (what vsr does);
- separate: the same three heads run as three separate passes (what one model per signal costs);
- the PII model's own pass, which comes on top in both cases (a different encoder);
- the jailbreak head's n-gram expert (character and word n-grams; Python, no encoder pass), already
  inside the bundle figure and shown alone so its share is visible.

A second table prices a *branch* (bundle.json "branches"): the same bundle with domain and
jailbreak reading their own copy of MiniLM's top 2 layers (from layer 4) while the embedding head
reads the trunk's last layer, so a pass runs 6 + 2 layers; with only the branch heads, 4 + 2. The
branch holds copies of layers 4-5, so its outputs must equal the plain bundle's (checked).

Run: `.venv/bin/python benches/bench_bundle.py` (after `make setup build`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BRANCH_FROM = 4  # MiniLM has 6 layers: a branch of 2

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


def interleaved_ms(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median ms of each call, sampled in turns: on a shared machine, load that comes and goes
    then falls on every call alike instead of on whichever ran during it."""
    for call in calls.values():
        for _ in range(3):
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(times) * 1e3 for name, times in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--branch-only", action="store_true", help="only the branch table")
    args = parser.parse_args()

    import vsr
    from vsr.models import EncoderBundle

    bundle = EncoderBundle.load("vsr-default")
    heads = ["embedding", "domain", "jailbreak"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} logical cores, {platform.system()}")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"versions: vsr {vsr.__version__}, Python {platform.python_version()}")
    if args.branch_only:
        branch_table(bundle, heads, args.repeats)
        return 0
    pii = EncoderBundle.load("vsr-pii")
    print()
    # The jailbreak n-gram expert shipped before the fine-tuned branch; "-" when there is none.
    expert = bundle.ngram_experts["jailbreak"][0] if "jailbreak" in bundle.ngram_experts else None
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
        ngrams = "-"
        if expert is not None:
            ngram_ms = median_ms(lambda t=texts: expert.log_probabilities(t), args.repeats)
            ngrams = f"{ngram_ms:.2f} ms"
        print(
            f"| {name} | {tokens} | {together:.2f} ms | {apart:.2f} ms | "
            f"{apart / together:.2f}x | {pii_ms:.2f} ms | {ngrams} |"
        )
    branch_table(bundle, heads, args.repeats)
    return 0


def unbranched_default(directory: Path) -> Path:
    """The vsr-default bundle with every head on the trunk's last layer (no branch): the cost of
    the bundle before it had a branch. Its classifier outputs are meaningless; only time counts."""
    from vsr.model_files import read_json, resolve_model_dir

    source = resolve_model_dir("vsr-default")
    manifest: dict[str, Any] = read_json(source / "bundle.json")
    manifest.pop("branches", None)
    for head in manifest["heads"].values():
        head.pop("branch", None)
        if "weights" in head:
            head["weights"] = str(source / head["weights"])
    (directory / "bundle.json").write_text(json.dumps(manifest), encoding="utf-8")
    return directory


def branched_default(directory: Path, from_layer: int) -> Path:
    """The vsr-default bundle with its classifiers on a branch of copies of MiniLM's own layers
    ``from_layer..5``: a fine-tuned branch's cost, the plain bundle's outputs."""
    from vsr.model_files import read_json, resolve_model_dir
    from vsr.training.heads import load_safetensors, save_safetensors

    source = resolve_model_dir("vsr-default")
    manifest: dict[str, Any] = read_json(source / "bundle.json")
    encoder = resolve_model_dir(manifest["encoder"])
    tensors = load_safetensors(encoder / "model.safetensors", skip_other_dtypes=True)
    layers = {
        name: values
        for name, values in tensors.items()
        if name.startswith("encoder.layer.") and int(name.split(".")[2]) >= from_layer
    }
    save_safetensors(directory / "tasks.branch.safetensors", layers)
    manifest["branches"] = {
        "tasks": {"from_layer": from_layer, "weights": "tasks.branch.safetensors"}
    }
    for head in manifest["heads"].values():
        if "weights" in head:
            head["weights"] = str(source / head["weights"])
        if "ngrams" in head:
            head["ngrams"]["weights"] = str(source / head["ngrams"]["weights"])
        if head["kind"] != "embedding":
            head["branch"] = "tasks"
    (directory / "bundle.json").write_text(json.dumps(manifest), encoding="utf-8")
    return directory


def branch_table(plain: Any, heads: list[str], repeats: int) -> None:
    import numpy as np

    from vsr.models import EncoderBundle

    classifiers = [head for head in heads if head != "embedding"]
    # The shipped bundle has its own (fine-tuned) branch: time it against the same heads without
    # one. Otherwise time a branch of copies of MiniLM's layers, whose outputs must not change.
    shipped = any(getattr(head, "branch", None) for head in plain.heads.values())
    with tempfile.TemporaryDirectory() as directory:
        if shipped:
            branched = plain
            plain = EncoderBundle.load(unbranched_default(Path(directory)))
        else:
            branched = EncoderBundle.load(branched_default(Path(directory), BRANCH_FROM))
    manifest = json.loads((Path(branched.path) / "bundle.json").read_text(encoding="utf-8"))
    where = next(iter(manifest.get("branches", {}).values()), {}).get("from_layer", BRANCH_FROM)
    print()
    print(
        f"| prompt | tokens | no branch: 3 heads | branch from layer {where}: 3 heads "
        f"| ratio | branch: {' + '.join(classifiers)} only | branch bundle: embedding only |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, text in PROMPTS.items():
        if text is None:
            continue
        texts = [text]
        expected, got = plain.run(texts, heads), branched.run(texts, heads)
        for head in heads if not shipped else ["embedding"]:
            if not np.array_equal(expected[head], got[head]):
                raise SystemExit(f"{head}: a branch changed the outputs it must not change")
        tokens = plain.count_tokens(texts)[0]
        times = interleaved_ms(
            {
                "base": lambda t=texts: plain.run(t, heads),
                "both": lambda t=texts: branched.run(t, heads),
                "only": lambda t=texts: branched.run(t, classifiers),
                "trunk": lambda t=texts: branched.run(t, ["embedding"]),
            },
            repeats,
        )
        base, both = times["base"], times["both"]
        print(
            f"| {name} | {tokens} | {base:.2f} ms | {both:.2f} ms | {both / base:.2f}x "
            f"| {times['only']:.2f} ms | {times['trunk']:.2f} ms |"
        )


if __name__ == "__main__":
    sys.exit(main())
