"""json_codec reads and writes exactly what the standard library does, orjson or not."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from vsr.extproc.response import JsonReader
from vsr.routing import json_codec
from vsr.routing.request import RequestError, parse_chat_request

_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

# What a client may send that orjson and json read (or write) differently, and plain bodies.
TRICKY = [
    b'{"a":"\\ud800"}',  # a lone surrogate escape: json reads it, orjson refuses
    b'{"a":"\xed\xa0\x80"}',  # a surrogate's UTF-8 bytes: json reads it (surrogatepass)
    b'{"a":NaN,"b":Infinity,"c":-Infinity}',
    b'{"a":1e400}',  # overflows a double: json gives inf, orjson refuses
    b'{"a":123456789012345678901234567890}',  # past 64 bits: orjson would give a float
    b'{"a":-9223372036854775809}',
    b'{"a":18446744073709551615}',
    b'{"a":0.00001,"b":1e-7,"c":4.07746263153912e-05}',  # written apart by orjson
    b'{"a":1E+16,"b":1.5e300,"c":-0.0,"d":0.1}',
    b"\xef\xbb\xbf{}",  # a byte-order mark
    '{"a":"é"}'.encode("utf-16"),
    b'{"a":1,"a":2,"b":[1,2,{"c":null}]}',
    b'{"model":"auto","messages":[{"role":"user","content":"\\ud83d\\ude00 \xc3\xa9"}]}',
    b'{"a":"\\u0000\\u001f\x7f\\"\\\\"}',
    b"[" * 1100 + b"]" * 1100,  # past both decoders' depth limits
    b"[" * 300 + b"]" * 300,
    b'{"a":1',  # invalid: the error must be json's
    b'{"a":"\x01"}',
    b"",
]


def _outcome(function: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "value", function(*args)
    except RecursionError:
        return "recursion", None
    except ValueError as error:
        return type(error).__name__, str(error)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)  # NaN, -0.0 and the digits, exactly
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _check(raw: bytes) -> None:
    expected = _outcome(json.loads, raw)
    got = _outcome(lambda data: json_codec.loads(data)[0], raw)
    assert got[0] == expected[0], raw[:60]
    if expected[0] != "value":
        assert got == expected, raw[:60]  # the same error, word for word
        return
    assert _same(got[1], expected[1]), raw[:60]
    value, plain = json_codec.loads(raw)
    written = _outcome(lambda v: json_codec.dumps(v, plain=plain), value)
    assert written == _outcome(lambda v: _COMPACT.encode(v).encode("utf-8"), expected[1])


@pytest.mark.parametrize("raw", TRICKY, ids=range(len(TRICKY)))
def test_loads_and_dumps_match_json(raw: bytes) -> None:
    _check(raw)


def test_mutated_bodies_match_json() -> None:
    """Random edits of a chat body: every value, error message and written body as json's."""
    pieces = [
        b"{", b"}", b"[", b"]", b'"', b"\\", b"u", b"d8", b"0", b"1", b"9", b"-", b"+", b".",
        b"e", b"E", b":", b",", b" ", b"\n", b"NaN", b"\xed\xa0\x80", b"\xff", b"\x00",
        b"\\udc00", b"12345678901234567890", b"0.00001", b"1e-7", b"true", b"null",
    ]  # fmt: skip
    seed = b'{"model":"auto","messages":[{"role":"user","content":"hi"}],"temperature":0.7}'
    rng = random.Random(7)
    for _ in range(4000):
        raw = bytearray(seed)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(raw))
            raw[at : at + rng.randint(0, 2)] = rng.choice(pieces)
        _check(bytes(raw))


def test_plain_only_when_orjson_writes_the_same() -> None:
    assert json_codec.loads(b'{"a":[1,2.5,"x"],"b":true}')[1] is json_codec.ORJSON
    for raw in (b'{"a":1e5}', b'{"a":0.00001}', b'{"a":12345678901234567890}', b'{"a":NaN}'):
        assert json_codec.loads(raw)[1] is False


def test_dumps_falls_back_on_what_orjson_refuses() -> None:
    for value in ({"a": 2**70}, {"a": "\ud800"}, {1: "x"}):
        assert _outcome(lambda v: json_codec.dumps(v, plain=True), value) == _outcome(
            lambda v: _COMPACT.encode(v).encode("utf-8"), value
        )


def test_request_bodies_keep_their_numbers_and_surrogates() -> None:
    """Through the ext_proc door: what goes upstream is what json would have written."""
    raw = (
        b'{"model":"auto","seed":123456789012345678901234567890,"temperature":0.00001,'
        b'"messages":[{"role":"user","content":"a \\ud800 b"}],"top_p":NaN}'
    )
    chat = parse_chat_request(raw, 1 << 20)
    assert chat.plain is False
    assert chat.body["seed"] == 123456789012345678901234567890
    assert chat.messages[0]["content"] == "a \ufffd b"  # normalised, as before
    assert math.isnan(chat.body["top_p"])
    with pytest.raises(RequestError) as error:
        parse_chat_request(b'{"model":"auto",', 1 << 20)
    assert error.value.status == 400 and error.value.code == "invalid_json"
    with pytest.raises(RequestError) as error:
        parse_chat_request(b"[" * 1100 + b"]" * 1100, 1 << 20)
    assert "nested more than" in error.value.message


def test_response_usage_past_64_bits_reads_as_json() -> None:
    big = 2**70
    body = (
        b'{"choices":[{"index":0,"finish_reason":"stop"}],"usage":{"prompt_tokens":'
        + str(big).encode()
        + b',"completion_tokens":3}}'
    )
    reader = JsonReader()
    reader.feed(body, end_of_stream=True)
    assert reader.stats.usage is not None
    assert reader.stats.usage.prompt_tokens == big
    assert reader.stats.finish_reason == "stop"
    broken = JsonReader()
    broken.feed(b'{"usage":', end_of_stream=True)
    assert broken.stats.parse_failed
