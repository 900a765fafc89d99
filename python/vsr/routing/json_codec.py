"""JSON on the request path: ``orjson`` where it gives exactly what the standard library gives,
the standard library everywhere else.

Every request body is parsed once and, when routing edits it, written again; every JSON response
is parsed for its usage. ``orjson`` does both several times faster, but it differs from ``json``
on inputs a client may send, and the result must not depend on which decoder ran:

- it refuses lone surrogates (``"\\ud800"``, or their UTF-8 bytes), ``NaN``/``Infinity``,
  numbers that overflow a double, a byte-order mark and UTF-16/32 bodies, all of which ``json``
  reads: any refusal falls back to ``json``, whose value (or error) is then the answer;
- it reads an integer beyond 64 bits as a float, silently: a body with a run of 19 or more
  digits goes to ``json`` without asking ``orjson``;
- it writes floats between 1e-9 and 1e-4 differently (``0.00001`` and ``1e-7`` where ``json``
  writes ``1e-05`` and ``1e-07``): a body whose text has an exponent or ``0.0000`` is parsed by
  ``json`` and marked so, and such a body is written by ``json`` too.

So ``loads`` says whether its value may be written by ``orjson`` (``plain``), and ``dumps`` takes
that flag. ``loads_lenient`` is for a reader that only looks at some integers (a response's
usage) and checks those itself. Without ``orjson`` installed everything is ``json``.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # an optional speed-up: the standard library does the same, slower
    orjson = None  # type: ignore[assignment]

# Bodies ``orjson`` may not read as ``json`` would (see the module docstring): long digit runs
# (integers past 64 bits), exponents (a JSON exponent always follows a digit) and long
# leading-zero fractions (floats it writes apart). With every digit mapped to 0 these are
# substring tests, a tenth of what one regular expression costs. Text inside a string may match
# too, which is harmless: that body is just read the slow way.
_NUMBER_SHAPES = bytes.maketrans(b"123456789E+", b"000000000e-")
_LONG_DIGITS = b"0" * 19

# ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``, with the encoder built once.
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _writes_floats_as_json() -> bool:
    """orjson's float text has changed between releases: it writes bodies only when it writes
    these (the shapes outside 1e-9..1e-4, which ``loads`` keeps away from it) as ``json`` does."""
    probe = [1e16, 1.5e16, 1e22, 1e300, 1e-4, 0.0001234, 1e-10, 2.5e-300, 5e-324, -0.0, 0.1, 1.0]
    probe += [123456789.12345679, 1.7976931348623157e308, 1e15, 9999999999999998.0, 7.0]
    return orjson is not None and orjson.dumps(probe) == _COMPACT.encode(probe).encode("utf-8")


ORJSON = orjson is not None
_ORJSON_WRITES = _writes_floats_as_json()


def loads(raw: bytes | bytearray) -> tuple[Any, bool]:
    """``json.loads(raw)``: the same value, or the same exception; and whether the value may be
    written back by ``orjson`` (``dumps(value, plain=True)``) with the bytes ``json`` writes."""
    if orjson is not None and _plain_numbers(raw):
        try:
            return orjson.loads(raw), True
        except orjson.JSONDecodeError:
            pass  # json decides: it may read it (surrogates, NaN, BOM) or raise its own error
    return json.loads(raw), False


def loads_lenient(raw: bytes | bytearray) -> Any:
    """``json.loads(raw)``, except that an integer beyond 64 bits may come back as a float: for
    a caller that reads a few integers and treats a float there as ``json``'s big integer
    (``loads`` for those)."""
    if orjson is not None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


def _plain_numbers(raw: bytes | bytearray) -> bool:
    shapes = raw.translate(_NUMBER_SHAPES)
    return not (b"0e0" in shapes or b"0e-0" in shapes or _LONG_DIGITS in shapes or b"0.0000" in raw)


def dumps(value: Any, *, plain: bool) -> bytes:
    """Compact UTF-8 JSON, as ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``.

    ``plain``: ``value`` came from ``loads`` with ``plain`` True (and edits since added only
    strings, booleans, objects and lists); anything ``orjson`` refuses still goes to ``json``."""
    if plain and _ORJSON_WRITES:
        try:
            return orjson.dumps(value)
        except TypeError:  # orjson.JSONEncodeError: a lone surrogate, an int past 64 bits
            pass
    return _COMPACT.encode(value).encode("utf-8")
