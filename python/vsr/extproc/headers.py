"""Reading Envoy header maps, and the header names vsr owns on the wire.

Envoy sends header values in ``raw_value`` (bytes) and leaves ``value`` empty; older Envoys (and
hand-written test streams) use ``value``. Both are read here, so nothing else has to care.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vsr.wire import (
    HEADER_ACCEPT,
    HEADER_CONTENT_LENGTH,
    HEADER_CONTENT_TYPE,
    HEADER_FAIL_OPEN,
    HEADER_REQUEST_ID,
    HEADER_SELECTED_MODEL,
    VSR_HEADER_PREFIX,
)

__all__ = [
    "HEADER_ACCEPT",
    "HEADER_CONTENT_LENGTH",
    "HEADER_CONTENT_TYPE",
    "HEADER_FAIL_OPEN",
    "HEADER_REQUEST_ID",
    "HEADER_SELECTED_MODEL",
    "VSR_HEADER_PREFIX",
    "header_dict",
    "header_values",
    "untrusted_request_headers",
]


def header_dict(header_map: Any) -> dict[str, str]:
    """An Envoy ``HeaderMap`` -> {lower-case name: value}; a repeated header keeps its last."""
    return {header.key.lower(): _value(header) for header in header_map.headers}


def _value(header: Any) -> str:
    """A header's value, from ``raw_value`` (bytes) when set, else ``value``."""
    raw = header.raw_value
    return raw.decode("utf-8", errors="replace") if raw else str(header.value)


def header_values(header_map: Any, names: frozenset[str]) -> dict[str, str]:
    """``header_dict`` of only the headers in ``names`` (lower-case): the others' values are
    not read (each value read from the message costs as much as the rest of the loop)."""
    found = {}
    for header in header_map.headers:
        key = header.key
        if key in names or key.lower() in names:
            found[key.lower()] = _value(header)
    return found


def untrusted_request_headers(names: Iterable[str]) -> list[str]:
    """Client-sent headers that only vsr may set: every ``x-vsr-*`` and ``x-selected-model``.

    A client must not be able to pick a backend behind vsr's back (``x-selected-model`` drives the
    route) or forge the headers vsr reports; vsr sets its own values after routing.
    """
    return sorted(
        name
        for name in names
        if name.startswith(VSR_HEADER_PREFIX) or name == HEADER_SELECTED_MODEL
    )
