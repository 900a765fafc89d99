"""Where int8's error in the default heads comes from: one group of products at a time.

Runs `int8_emulate.Model` (the bundle in float32 numpy) with int8 products (vsr's rounding:
weights per output channel, activations per row) only where a scheme says, every other product
in float32, and reports what that group alone does to the embedding (cosine to float32) and to
the default heads: decisions changed, and the RMS change of the domain head's top-two margin and
of the jailbreak head's attack probability (continuous, so groups compare without the decision
counts' noise; independent errors add in variance).

The texts are an *analysis* set, none of int8_quality.py's or of data/heldout: a seeded sample
of the heads' training data (data/domain/real.jsonl, data/jailbreak/attacks_more and
benign_more), so a choice made here is not fitted to the texts it is reported on.

    OPENBLAS_NUM_THREADS=1 python benches/int8_sensitivity.py trunk012 branch down ...

Layers are numbered as in int8_emulate: trunk 0-5, the branch's 13-15 (its layers 3-5).
Each float32 layer input is computed once and kept, so a group is run from its first layer.
"""

from __future__ import annotations

import gzip
import json
import random
import sys
import time
from collections.abc import Callable, Iterable

import numpy as np

from int8_emulate import ROOT, Array, Model, bf16, pool, rows_uint8, same, weight_int8

TRUNK, BRANCH = tuple(range(6)), (13, 14, 15)
PRODUCTS = ("qkv", "ao", "up", "down")


def analysis_texts(seed: int = 0, per_file: int = 400) -> list[str]:
    def read(name: str) -> list[str]:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(ROOT / name, "rt", encoding="utf-8") as f:
            return [json.loads(line)["text"][:600] for line in f if line.strip()]

    rng = random.Random(seed)
    texts = rng.sample(read("data/domain/real.jsonl"), per_file)
    texts += rng.sample(read("data/jailbreak/attacks_more.jsonl.gz"), per_file // 2)
    return texts + rng.sample(read("data/jailbreak/benign_more.jsonl.gz"), per_file // 2)


def group(
    layers: Iterable[int], products: Iterable[str] = PRODUCTS, weights=weight_int8, rows=rows_uint8
):
    """A scheme: the named (layer, product) pairs rounded, every other one in float32."""
    chosen = {(layer, product) for layer in layers for product in products}

    def choose(layer: int, product: str) -> tuple[Callable, Callable]:
        return (weights, rows) if (layer, product) in chosen else (same, same)

    return choose


def rows_two_pass(a: Array) -> Array:
    """Activations in two u8 passes: per-row u8, then its rounding error in u8 at 1/255 the step
    (what two VNNI products against the same weights would sum: ~16-bit rows)."""
    first = rows_uint8(a)
    rest = a - first
    step = np.maximum(np.abs(rest).max(-1, keepdims=True), 1e-30) / 127
    return first + np.clip(np.round(rest / step), -127, 127) * step


def weight_two_pass(w: Array) -> Array:
    """Weights as int8 plus their rounding error in int8 per channel (~15-bit weights)."""
    first = weight_int8(w)
    return first + weight_int8(w - first)


def weight_int8_mse(w: Array) -> Array:
    """int8 per output channel with the scale (a fraction of the channel's largest value) that
    makes the channel's squared rounding error least, instead of the largest value itself."""
    best, error = weight_int8(w), None
    for fraction in np.linspace(0.6, 1.0, 21):
        largest = np.maximum(np.abs(w).max(1, keepdims=True), 1e-30) * fraction / 127
        q = np.clip(np.round(w / largest), -127, 127) * largest
        e = ((q - w) ** 2).sum(1)
        if error is None:
            best, error = q, e
        else:
            better = e < error
            best[better], error[better] = q[better], e[better]
    return best


HEADS = TRUNK[:3] + BRANCH
INT8 = (weight_int8, rows_uint8)
BF16 = (bf16, bf16)


def mixed(layers: Iterable[int], inside: tuple, outside: tuple = INT8) -> Callable:
    """A candidate: the named layers' products rounded as `inside`, every other as `outside`."""
    return lambda layer, product: inside if layer in layers else outside


def rows_twice_in(kind: str) -> Callable:
    """vsr's int8 everywhere, with the activations of one product kind in two passes."""
    return lambda layer, product: (weight_int8, rows_two_pass if product == kind else rows_uint8)


GROUPS: dict[str, Callable] = {
    "all": group(TRUNK + BRANCH),
    "trunk012": group(TRUNK[:3]),
    "trunk345": group(TRUNK[3:]),
    "branch": group(BRANCH),
    **{kind: group(HEADS, (kind,)) for kind in PRODUCTS},
    **{f"layer{i}": group((i,)) for i in HEADS},
    "weights_only": group(TRUNK + BRANCH, rows=same),
    "rows_only": group(TRUNK + BRANCH, weights=same),
    "bf16": group(TRUNK + BRANCH, weights=bf16, rows=bf16),
    # Finer int8, each over every layer: activations or weights in two passes, weights with the
    # least-squares scale, activations in two passes for one product kind only.
    "rows_two_pass": group(TRUNK + BRANCH, rows=rows_two_pass),
    "weights_two_pass": group(TRUNK + BRANCH, weights=weight_two_pass),
    "weights_mse": group(TRUNK + BRANCH, weights=weight_int8_mse),
    "rows2_weights_mse": group(TRUNK + BRANCH, weights=weight_int8_mse, rows=rows_two_pass),
    **{f"rows2_{kind}": rows_twice_in(kind) for kind in ("qkv", "up", "down")},
    # Mixed precision: bf16 in the named layers, int8 elsewhere.
    "branch_bf16": mixed(BRANCH, BF16),
    "trunk012_bf16": mixed(TRUNK[:3], BF16),
    "heads_bf16": mixed(HEADS, BF16),
    "rows2_branch_bf16": mixed(BRANCH, BF16, (weight_int8, rows_two_pass)),
}


class Cached:
    """The float32 pass once, with every layer's input kept per batch of 32 (sorted by length)."""

    def __init__(self, model: Model, texts: list[str]) -> None:
        self.model = model
        encoded = [model.tokenizer.encode(t).ids for t in texts]
        order = np.argsort([len(e) for e in encoded])
        self.batches = []
        for first in range(0, len(order), 32):
            idx = order[first : first + 32]
            length = max(len(encoded[i]) for i in idx)
            ids = np.zeros((len(idx), length), np.int64)
            mask = np.zeros((len(idx), length), np.float32)
            for r, i in enumerate(idx):
                ids[r, : len(encoded[i])], mask[r, : len(encoded[i])] = encoded[i], 1
            self.batches.append((idx, mask, {0: model._embed(ids)}))
        self.count = len(texts)
        self.weights: dict = {}
        self.reference = self.run(None)

    def linear(self, scheme: Callable | None) -> Callable:
        def apply(key: tuple[int, str], x: Array, w: Array, b: Array) -> Array:
            weights, rows = scheme(*key) if scheme else (same, same)
            if (key, weights) not in self.weights:
                self.weights[key, weights] = np.ascontiguousarray(weights(w).T)
            return (rows(x.reshape(-1, x.shape[-1])) @ self.weights[key, weights] + b).reshape(
                *x.shape[:-1], -1
            )

        return apply

    def run(self, scheme: Callable | None) -> tuple[Array, Array, Array]:
        """(embeddings, domain logits, jailbreak probabilities); the float32 pass (scheme None)
        keeps every layer's input, a scheme's pass starts at its first rounded layer."""
        model, linear, keep = self.model, self.linear(scheme), scheme is None
        touched = [
            i for i in TRUNK + BRANCH for p in PRODUCTS if scheme and scheme(i, p) != (same, same)
        ]
        first = 0 if keep else min(touched)
        out = (np.zeros((self.count, 384)), np.zeros((self.count, 14)), np.zeros((self.count, 3)))
        for idx, mask, inputs in self.batches:
            x, y = inputs.get(first), inputs.get(13)
            for i in range(first, 6):  # the trunk from its first rounded layer
                if keep:
                    inputs[i] = x
                if i == 3:
                    y = x  # the branch reads the trunk's input of layer 3
                x = model._forward(x, model.trunk[i], mask, i, linear)
            out[0][idx] = pool(x, mask) if first < 6 else self.reference[0][idx]
            if 3 <= first < 6:  # only the trunk's top layers changed: the heads did not
                out[1][idx], out[2][idx] = self.reference[1][idx], self.reference[2][idx]
                continue
            y = inputs[first] if first > 6 else y
            for index in BRANCH:
                if index >= first or first < 3:
                    if keep:
                        inputs[index] = y
                    y = model._forward(y, model.branch[index - 13], mask, index, linear)
            out[1][idx], out[2][idx] = self.heads(pool(y, mask))
        return out

    def heads(self, pooled: Array) -> tuple[Array, Array]:
        h = self.model.heads
        domain = pooled @ h["domain"]["layers.weight"].T + h["domain"]["layers.bias"]
        logits = pooled @ h["jailbreak"]["layers.weight"].T + h["jailbreak"]["layers.bias"]
        logits = np.exp(logits - logits.max(1, keepdims=True))
        return domain, logits / logits.sum(1, keepdims=True)


def compare(reference: tuple[Array, Array, Array], got: tuple[Array, Array, Array]) -> str:
    a, b = reference[0], got[0]
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    top = np.argsort(-reference[1], axis=1)[:, :2]
    rows = np.arange(len(top))
    margin = lambda logits: logits[rows, top[:, 0]] - logits[rows, top[:, 1]]  # noqa: E731
    margin_error = margin(got[1]) - margin(reference[1])
    attack_ref, attack = reference[2][:, 1:].sum(1), got[2][:, 1:].sum(1)
    domain = reference[1].argmax(1) == got[1].argmax(1)
    jailbreak = (attack_ref >= 0.5) == (attack >= 0.5)
    return (
        f"cosine mean {cosine.mean():.5f} min {cosine.min():.5f}; margin RMS "
        f"{np.sqrt((margin_error**2).mean()):.4f}, attack RMS "
        f"{np.sqrt(((attack - attack_ref) ** 2).mean()):.4f}; changed: domain {(~domain).sum()}, "
        f"jailbreak {(~jailbreak).sum()}, either {(~(domain & jailbreak)).sum()}"
    )


def main(names: list[str]) -> None:
    start = time.perf_counter()
    cached = Cached(Model(), analysis_texts())
    print(
        f"{cached.count} analysis texts, float32 pass {time.perf_counter() - start:.0f} s",
        flush=True,
    )
    for name in names:
        start = time.perf_counter()
        got = cached.run(GROUPS[name])
        print(
            f"{name}: {compare(cached.reference, got)} ({time.perf_counter() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:] or list(GROUPS))
