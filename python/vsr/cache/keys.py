"""What makes two requests the same question: the cache key, the tenant scope, and the rules for
what may be cached at all.

Similarity is judged on the classified text's embedding only; everything else that changes an
answer must match exactly. The exact part is the request body as it goes upstream (after
routing: served model, injected system prompt, reasoning switch) with the newest user message's
text left out (its other content parts, an image, stay in) and the fields that only change
delivery (``stream``, ``stream_options``, ``user``, ``metadata``, ``store``) dropped. Every other
field, known or not, is in the key, so a parameter vsr has never heard of can only cause a miss,
never a wrong answer.

The question's literals are in the key too: its numbers and quoted strings. A sentence embedding
barely sees them ("What is 17 times 23?" and "... 24?" score 0.91 with MiniLM, above any useful
threshold), and they are exactly what changes an answer; a paraphrase keeps them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vsr.config.cache import CacheConfig

# Fields that change how an answer is delivered, not what it says.
DELIVERY_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store"})
ANONYMOUS_SCOPE = "anonymous"
# Numbers (1,000.5 as one), and text in double quotes, backticks or stand-alone single quotes.
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_QUOTED = re.compile(r'"([^"\n]{1,256})"|`([^`\n]{1,256})`|(?<!\w)\'([^\'\n]{1,256})\'(?!\w)')
HEADER_CACHE_CONTROL = "cache-control"
HEADER_VSR_CACHE_CONTROL = "x-vsr-cache-control"


@dataclass(frozen=True, slots=True)
class CacheControl:
    """The client's wishes: ``lookup`` (no ``no-cache``) and ``store`` (no ``no-store``)."""

    lookup: bool = True
    store: bool = True


def cache_control(headers: Mapping[str, str]) -> CacheControl:
    """``Cache-Control`` and ``x-vsr-cache-control``: ``no-store`` turns off lookup and write,
    ``no-cache`` the lookup only. A client can only ask for less caching, so both are honoured
    (``x-vsr-*`` headers are otherwise never trusted)."""
    words: set[str] = set()
    for name in (HEADER_CACHE_CONTROL, HEADER_VSR_CACHE_CONTROL):
        value = headers.get(name, "")
        words |= {part.split("=", 1)[0].strip().lower() for part in value.split(",")}
    if "no-store" in words:
        return CacheControl(lookup=False, store=False)
    return CacheControl(lookup="no-cache" not in words, store=True)


def tenant_scope(headers: Mapping[str, str], names: tuple[str, ...]) -> str:
    """The scope of a request: a hash of the first configured tenant header present (so an API
    key is never stored), else ``anonymous`` (not cached at all under ``require_tenant``)."""
    for name in names:
        value = headers.get(name.lower())
        if value:
            return scope_id(name, value)
    return ANONYMOUS_SCOPE


def scope_id(header: str, value: str) -> str:
    """The stored scope for a tenant header's value (what ``DELETE /api/v1/cache`` computes)."""
    digest = hashlib.sha256(f"{header.lower()}\0{value}".encode()).hexdigest()
    return f"t-{digest[:32]}"


@dataclass(frozen=True, slots=True)
class Skip:
    """Why a request is not cached (a metric label, from a fixed set)."""

    reason: str


def request_key(body: Mapping[str, Any], served_model: str) -> str:
    """The exact-match key of a routed body (see the module docstring)."""
    kept = {name: value for name, value in body.items() if name not in DELIVERY_FIELDS}
    messages = list(kept.get("messages") or [])
    last = dict(messages[-1])
    content = last.pop("content", None)
    question = _text(content)
    if isinstance(content, list):
        # Only the question's words are left to similarity: its images, audio and files (and
        # every other field of its parts) change the answer and must match exactly.
        last["\0parts"] = [_without_text(part) for part in content]
    kept["messages"] = [*messages[:-1], last]
    kept["model"] = served_model
    kept["\0literals"] = question_literals(question)
    canonical = json.dumps(kept, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", errors="surrogatepass")).hexdigest()


def question_literals(text: str) -> list[str]:
    """The numbers and quoted strings of a question, in order (see the module docstring)."""
    numbers = [number.replace(",", "") for number in _NUMBER.findall(text)]
    quoted = ["".join(groups) for groups in _QUOTED.findall(text)]
    return [*numbers, *quoted]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, Mapping)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def _without_text(part: Any) -> Any:
    if isinstance(part, Mapping):
        return {name: value for name, value in part.items() if name != "text"}
    return None  # a bare string: text


def uncacheable(body: Mapping[str, Any], config: CacheConfig) -> Skip | None:
    """A reason this request's answer must not be cached or served from cache, or None."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return Skip("not_chat")
    last = messages[-1]
    if not isinstance(last, Mapping) or last.get("role") != "user":
        # A tool result or an assistant prefill: the answer depends on more than a question.
        return Skip("not_user_turn")
    if body.get("logprobs") or body.get("audio") or body.get("prediction"):
        # The stored answer keeps the message only: no token log-probabilities or audio.
        return Skip("unstorable_output")
    n = body.get("n", 1)
    if n not in (None, 1):
        return Skip("n_above_1")
    temperature = body.get("temperature")
    sampled = temperature is None or not isinstance(temperature, int | float) or temperature > 0
    if sampled and not config.sampled_requests:
        return Skip("sampled")
    return None
