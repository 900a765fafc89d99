"""Just enough of the ONNX file format to read a graph's weights: nodes and initializers.

An ``.onnx`` file is one protobuf ``ModelProto``. Converting a quantized model needs only the
initializer tensors and, per node, its op type, inputs, outputs and integer attributes, so this
reads the protobuf wire format directly with numpy instead of making the ``onnx`` package (and its
protobuf runtime) a dependency of a setup step every user runs.

Field numbers come from onnx.proto (ModelProto.graph = 7; GraphProto.node = 1, .initializer = 5;
NodeProto.input = 1, .output = 2, .name = 3, .op_type = 4, .attribute = 5; AttributeProto.name = 1,
.i = 3; TensorProto.dims = 1, .data_type = 2, .float_data = 4, .int32_data = 5, .int64_data = 7,
.name = 8, .raw_data = 9, .data_location = 14).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# TensorProto.DataType -> numpy dtype, for the types quantized BERT exports use.
_DTYPES: dict[int, np.dtype[np.generic]] = {
    1: np.dtype("<f4"),
    2: np.dtype("u1"),
    3: np.dtype("i1"),
    6: np.dtype("<i4"),
    7: np.dtype("<i8"),
    10: np.dtype("<f2"),
    11: np.dtype("<f8"),
}

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


class OnnxFormatError(ValueError):
    """The bytes are not an ONNX model this reader understands; the message says what."""


@dataclass(frozen=True)
class OnnxNode:
    op_type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    int_attributes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class OnnxGraph:
    nodes: list[OnnxNode]
    initializers: dict[str, np.ndarray]


def _read_varint(data: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise OnnxFormatError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise OnnxFormatError("varint longer than 64 bits")


def _fields(data: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) for each field of one message, in file order."""
    position = 0
    while position < len(data):
        key, position = _read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        value: int | memoryview
        if wire_type == _VARINT:
            value, position = _read_varint(data, position)
        elif wire_type == _LENGTH_DELIMITED:
            length, position = _read_varint(data, position)
            if position + length > len(data):
                raise OnnxFormatError(f"field {number} runs past the end of its message")
            value = data[position : position + length]
            position += length
        elif wire_type == _FIXED64:
            value = int.from_bytes(data[position : position + 8], "little")
            position += 8
        elif wire_type == _FIXED32:
            value = int.from_bytes(data[position : position + 4], "little")
            position += 4
        else:
            raise OnnxFormatError(f"unsupported wire type {wire_type} in field {number}")
        yield number, wire_type, value


def _text(value: int | memoryview) -> str:
    if not isinstance(value, memoryview):
        raise OnnxFormatError("expected a string field")
    return bytes(value).decode("utf-8")


def _bytes(value: int | memoryview) -> memoryview:
    if not isinstance(value, memoryview):
        raise OnnxFormatError("expected a length-delimited field")
    return value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _int64_list(wire_type: int, value: int | memoryview) -> list[int]:
    """A repeated int64 field: one varint, or a packed run of them."""
    if isinstance(value, int):
        return [_signed64(value)]
    values, position = [], 0
    while position < len(value):
        item, position = _read_varint(value, position)
        values.append(_signed64(item))
    return values


def _parse_tensor(data: memoryview) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    data_type = 0
    name = ""
    raw: memoryview | None = None
    floats: list[np.ndarray] = []
    ints: list[int] = []
    external = False
    for number, wire_type, value in _fields(data):
        if number == 1:
            dims.extend(_int64_list(wire_type, value))
        elif number == 2 and isinstance(value, int):
            data_type = value
        elif number == 4:
            floats.append(
                np.frombuffer(_bytes(value), dtype="<f4")
                if wire_type == _LENGTH_DELIMITED
                else np.array([value], dtype="<u4").view("<f4")
            )
        elif number in (5, 7):
            ints.extend(_int64_list(wire_type, value))
        elif number == 8:
            name = _text(value)
        elif number == 9:
            raw = _bytes(value)
        elif number == 14 and value == 1:
            external = True
    if external:
        raise OnnxFormatError(f"tensor {name!r} keeps its data in an external file")
    dtype = _DTYPES.get(data_type)
    if dtype is None:
        raise OnnxFormatError(f"tensor {name!r} has unsupported data type {data_type}")
    if raw is not None:
        array = np.frombuffer(raw, dtype=dtype).copy()
    elif floats:
        array = np.concatenate(floats).astype(dtype)
    else:
        # int32_data also carries uint8/int8/float16 values, one per element.
        array = np.array(ints, dtype=np.int64).astype(dtype)
    expected = int(np.prod(dims)) if dims else 1
    if array.size != expected:
        raise OnnxFormatError(f"tensor {name!r}: {array.size} values for shape {dims}")
    return name, array.reshape(dims)


def _parse_node(data: memoryview) -> OnnxNode:
    inputs: list[str] = []
    outputs: list[str] = []
    name = op_type = ""
    attributes: dict[str, int] = {}
    for number, _, value in _fields(data):
        if number == 1:
            inputs.append(_text(value))
        elif number == 2:
            outputs.append(_text(value))
        elif number == 3:
            name = _text(value)
        elif number == 4:
            op_type = _text(value)
        elif number == 5:
            attribute_name, integer = "", None
            for attribute_number, _, attribute_value in _fields(_bytes(value)):
                if attribute_number == 1:
                    attribute_name = _text(attribute_value)
                elif attribute_number == 3 and isinstance(attribute_value, int):
                    integer = _signed64(attribute_value)
            if integer is not None:
                attributes[attribute_name] = integer
    return OnnxNode(op_type, name, tuple(inputs), tuple(outputs), attributes)


def parse_model(data: bytes) -> OnnxGraph:
    """The main graph of a serialized ``ModelProto``."""
    view = memoryview(data)
    graph_bytes = [value for number, _, value in _fields(view) if number == 7]
    if not graph_bytes:
        raise OnnxFormatError("no graph in the model (is this an ONNX file?)")
    nodes: list[OnnxNode] = []
    initializers: dict[str, np.ndarray] = {}
    for number, _, value in _fields(_bytes(graph_bytes[-1])):
        if number == 1:
            nodes.append(_parse_node(_bytes(value)))
        elif number == 5:
            name, array = _parse_tensor(_bytes(value))
            initializers[name] = array
    return OnnxGraph(nodes, initializers)


def read_model(path: Path) -> OnnxGraph:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise OnnxFormatError(f"{path}: cannot read ({error})") from None
    try:
        return parse_model(data)
    except OnnxFormatError as error:
        raise OnnxFormatError(f"{path}: {error}") from None
