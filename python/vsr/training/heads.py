"""Fitting small heads on pooled encoder features, and writing them as safetensors.

A head is what the native core runs after pooling: ``layers.weight``/``layers.bias`` for a linear
head, or ``layers.{i}.weight``/``layers.{i}.bias`` for an MLP (ReLU between layers), followed by
softmax. Fitting uses scikit-learn (a training-only dependency), imported inside the functions.
The safetensors writer is ours: tensors in sorted order and a sorted JSON header, so the same
weights always give the same bytes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16"}


@dataclass(frozen=True)
class HeadFit:
    """A fitted head: its layers as ``name -> float32 array`` and how to describe it in a card."""

    tensors: dict[str, np.ndarray]
    labels: tuple[str, ...]
    description: str

    def logits(self, features: np.ndarray) -> np.ndarray:
        """What the native core computes before softmax, for checks in Python."""
        if "layers.weight" in self.tensors:
            linear: np.ndarray = features @ self.tensors["layers.weight"].T
            linear += self.tensors["layers.bias"]
            return linear
        hidden = features
        count = len({name.split(".")[1] for name in self.tensors})
        for index in range(count):
            hidden = hidden @ self.tensors[f"layers.{index}.weight"].T
            hidden = hidden + self.tensors[f"layers.{index}.bias"]
            if index < count - 1:
                hidden = np.maximum(hidden, 0.0)
        return hidden

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return softmax(self.logits(features))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    result: np.ndarray = exponentials / exponentials.sum(axis=1, keepdims=True)
    return result


def encode_labels(labels: Sequence[str], order: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(order)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise ValueError(f"labels not in the head's label list: {', '.join(unknown)}")
    return np.array([index[label] for label in labels], dtype=np.int64)


def softmax_rows(model: Any, labels: int) -> tuple[np.ndarray, np.ndarray]:
    """A fitted scikit-learn ``LogisticRegression`` as one softmax row (and bias) per label.

    Binary logistic regression keeps one row w: P(class 1) = sigmoid(w.x + b). As two softmax
    rows [0, w] a softmax gives the same probabilities.
    """
    if list(model.classes_) != list(range(labels)):
        raise ValueError(f"every label needs training examples; got classes {list(model.classes_)}")
    coefficients = np.asarray(model.coef_, dtype=np.float64)
    intercepts = np.asarray(model.intercept_, dtype=np.float64)
    if labels == 2 and coefficients.shape[0] == 1:
        coefficients = np.vstack([np.zeros_like(coefficients), coefficients])
        intercepts = np.array([0.0, intercepts[0]])
    return coefficients, intercepts


def fit_linear_head(
    features: np.ndarray,
    labels: Sequence[str],
    order: Sequence[str],
    *,
    regularization: float = 1.0,
    sample_weight: np.ndarray | None = None,
    seed: int = 0,
) -> HeadFit:
    """Multinomial logistic regression; ``regularization`` is scikit-learn's C (inverse strength).

    Classes are balanced by weight so a small class (or a rare attack family) is not drowned out.
    """
    from sklearn.linear_model import LogisticRegression

    targets = encode_labels(labels, order)
    model = LogisticRegression(
        C=regularization, class_weight="balanced", max_iter=2000, tol=1e-4, random_state=seed
    )
    model.fit(features.astype(np.float64), targets, sample_weight=sample_weight)
    coefficients, intercepts = softmax_rows(model, len(order))
    tensors = {
        "layers.weight": np.ascontiguousarray(coefficients, dtype=np.float32),
        "layers.bias": np.ascontiguousarray(intercepts, dtype=np.float32),
    }
    description = (
        f"linear softmax (multinomial logistic regression, L2, C={regularization}, "
        "balanced class weights, lbfgs)"
    )
    return HeadFit(tensors, tuple(order), description)


def fit_mlp_head(
    features: np.ndarray,
    labels: Sequence[str],
    order: Sequence[str],
    *,
    hidden: int = 256,
    alpha: float = 1e-3,
    sample_weight: np.ndarray | None = None,
    seed: int = 0,
) -> HeadFit:
    """One hidden ReLU layer, trained with Adam and early stopping on a seeded inner split."""
    from sklearn.neural_network import MLPClassifier

    targets = encode_labels(labels, order)
    model = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        activation="relu",
        alpha=alpha,
        max_iter=300,
        early_stopping=True,
        random_state=seed,
    )
    model.fit(features.astype(np.float64), targets, sample_weight=sample_weight)
    tensors: dict[str, np.ndarray] = {}
    for index, (weight, bias) in enumerate(zip(model.coefs_, model.intercepts_, strict=True)):
        tensors[f"layers.{index}.weight"] = np.ascontiguousarray(weight.T, dtype=np.float32)
        tensors[f"layers.{index}.bias"] = np.ascontiguousarray(bias, dtype=np.float32)
    if len(order) == 2 and tensors["layers.1.weight"].shape[0] == 1:
        last_weight, last_bias = tensors["layers.1.weight"], tensors["layers.1.bias"]
        tensors["layers.1.weight"] = np.vstack([np.zeros_like(last_weight), last_weight])
        tensors["layers.1.bias"] = np.concatenate([np.zeros_like(last_bias), last_bias])
    description = f"MLP ({hidden} ReLU units, L2 alpha={alpha}, Adam, early stopping)"
    return HeadFit(tensors, tuple(order), description)


def save_safetensors(
    path: Path, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``tensors`` in the safetensors format, deterministically (sorted names and keys)."""
    header: dict[str, object] = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        dtype = _DTYPES.get(array.dtype)
        if dtype is None:
            raise ValueError(
                f"tensor {name!r}: dtype {array.dtype} is not supported (float32 or float16)"
            )
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": dtype,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format aligns tensor data to 8 bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for blob in blobs:
            handle.write(blob)


_READ = {"F32": "<f4", "F16": "<f2"}


def load_safetensors(path: Path, *, skip_other_dtypes: bool = False) -> dict[str, np.ndarray]:
    """Read the float tensors of a safetensors file as float32 (float16 ones upcast, as the core
    does with the shipped branch); other dtypes are an error unless skipped."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    start = 8 + size
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or (skip_other_dtypes and info["dtype"] not in _READ):
            continue
        if info["dtype"] not in _READ:
            raise ValueError(
                f"{path}: tensor {name!r} has dtype {info['dtype']}, expected F32 or F16"
            )
        begin, end = info["data_offsets"]
        array = np.frombuffer(raw[start + begin : start + end], dtype=_READ[info["dtype"]])
        tensors[name] = array.reshape(info["shape"]).astype(np.float32)
    return tensors
