"""The PII signal reads all of a long prompt: the engine runs its encoder over windows.

The fake encoder sees only the first ``SEEN_CHARS`` characters of each text it is given, as the
real model sees only its first 512 tokens; an email placed far past that must still be found, in
one encoder call, with offsets on the whole text. Patterns are off so only the model can find it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vsr.config import parse_config_text
from vsr.config.signals import PiiSignal
from vsr.inference import HeadDescription, ModelRegistry
from vsr.models import Entity
from vsr.pii.detector import WINDOW_CHARS, plan_windows
from vsr.router import Router

SEEN_CHARS = WINDOW_CHARS + 100
FILLER = "The committee reviewed the quarterly figures and agreed to meet again. "


class TruncatingPiiEncoder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    @property
    def heads(self) -> Mapping[str, HeadDescription]:
        return {"pii": HeadDescription("pii", "token", ("O", "B-EMAIL", "I-EMAIL"))}

    def run(self, texts: Sequence[str], heads: Sequence[str]) -> dict[str, Any]:
        self.calls.append(list(texts))
        return {
            "pii": [
                [
                    Entity("B-EMAIL", m.start(), m.end(), 0.95, m.group())
                    for m in re.finditer(r"\S+@\S+\.\w+", text[:SEEN_CHARS])
                ]
                for text in texts
            ]
        }

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) for text in texts]


CONFIG = """
default_model: general-llm
models: [{name: general-llm}]
signals:
  - {type: pii, name: pii, model: pii, use_patterns: false}
plugins:
  - {type: pii, signal: pii}
decisions: []
"""


def make_router() -> tuple[Router, TruncatingPiiEncoder]:
    encoder = TruncatingPiiEncoder()
    registry = ModelRegistry(
        resolver=lambda name: Path("/fake") / name, loader=lambda path, device: encoder
    )
    return Router(parse_config_text(CONFIG), registry=registry), encoder


def request(text: str) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": text}]}


def long_prompt_with_email_at(position_chars: int) -> str:
    filler = (FILLER * (position_chars // len(FILLER) + 1))[:position_chars]
    return filler + " please write to jane.doe@example.com about it. " + FILLER * 3


def test_email_far_past_the_model_window_blocks_in_one_encoder_call() -> None:
    router, encoder = make_router()
    text = long_prompt_with_email_at(6000)
    result = router.route(request(text))
    assert result.blocked is not None and result.blocked.entity_types == ("EMAIL_ADDRESS",)
    assert len(encoder.calls) == 1
    # Identical windows (the filler repeats) are read once: the encoder gets each distinct text.
    distinct = {text[start:end] for start, end in plan_windows(text)}
    assert len(encoder.calls[0]) == len(distinct) > 1


def test_async_route_reads_windows_too() -> None:
    router, encoder = make_router()
    result = asyncio.run(router.aroute(request(long_prompt_with_email_at(4000))))
    assert result.blocked is not None and len(encoder.calls[0]) > 1


def test_short_prompt_is_one_text_and_clean_long_prompt_passes() -> None:
    router, encoder = make_router()
    assert router.route(request("hello there")).blocked is None
    assert encoder.calls == [["hello there"]]
    assert router.route(request(FILLER * 200)).blocked is None


def test_windows_are_bounded_and_keep_the_end_of_a_huge_prompt() -> None:
    router, encoder = make_router()
    # ~380k characters; numbered so that no two windows are the same text.
    huge = "".join(f"{FILLER}({index}) " for index in range(5000)) + "mail jane.doe@example.com"
    result = router.route(request(huge))
    # The signal's max_windows (8 by default): the first and last halves of the windows.
    assert len(encoder.calls[0]) == PiiSignal.model_fields["max_windows"].default == 8
    assert result.blocked is not None  # the last window is always read


def test_many_short_messages_are_all_read() -> None:
    # Nine one-line turns once cost nine windows; past max_windows (8) the middle one was never
    # read, so an address in it (or an attack, for the jailbreak signal) reached the model. The
    # budget is in characters: short messages are each read on their own.
    router, encoder = make_router()
    turns = [f"Turn {i}: tell me more about topic {i}." for i in range(9)]
    turns[4] = "Turn 4: reply to jane.doe@example.com please."
    messages = [{"role": "user", "content": t} for t in turns]
    result = router.route({"model": "auto", "messages": messages})
    assert result.blocked is not None and result.blocked.entity_types == ("EMAIL_ADDRESS",)
    assert sorted(encoder.calls[0]) == sorted(turns)


def test_very_many_short_messages_share_windows_and_are_all_read() -> None:
    # Past 4x max_windows short messages, neighbours share windows (as few per window as the
    # limit allows) before any is left out.
    router, encoder = make_router()
    turns = [f"Turn {i}: tell me more about topic {i}." for i in range(100)]
    turns[50] = "Turn 50: reply to jane.doe@example.com please."
    result = router.route(
        {"model": "auto", "messages": [{"role": "user", "content": t} for t in turns]}
    )
    assert result.blocked is not None and result.blocked.entity_types == ("EMAIL_ADDRESS",)
    assert len(encoder.calls[0]) <= 4 * PiiSignal.model_fields["max_windows"].default
    read = "".join(encoder.calls[0])
    assert all(turn in read for turn in turns)


def test_long_messages_keep_their_own_windows_past_the_limit() -> None:
    # Windows that do not fit together are not merged: the head-and-tail cut still bounds them.
    router, encoder = make_router()
    messages = [
        {"role": "user", "content": "".join(f"{FILLER}({i}.{j}) " for j in range(20))}
        for i in range(12)
    ]
    router.route({"model": "auto", "messages": messages})
    assert len(encoder.calls[0]) == 8
    assert all(len(text) <= WINDOW_CHARS for text in encoder.calls[0])
