"""Keyword signals: whole words/phrases or regexes in the text, combined with any / all / none."""

from __future__ import annotations

import re

from vsr.config.signals import KeywordSignal
from vsr.signals.base import Signal, SignalInputs, register
from vsr.signals.result import SignalResult


@register("keyword")
class KeywordMatcher(Signal[KeywordSignal]):
    def __init__(self, config: KeywordSignal, path: str) -> None:
        super().__init__(config, path)
        flags = 0 if config.case_sensitive else re.IGNORECASE
        # Lookarounds instead of \b so keywords that start or end with punctuation ("c++") still
        # only match as whole tokens.
        self._terms: list[tuple[str, re.Pattern[str]]] = [
            (keyword, re.compile(rf"(?<!\w){re.escape(keyword)}(?!\w)", flags))
            for keyword in config.keywords
        ]
        self._terms += [(pattern, re.compile(pattern, flags)) for pattern in config.patterns]

    def evaluate(self, text: str, inputs: SignalInputs) -> SignalResult:
        found = [term for term, pattern in self._terms if pattern.search(text)]
        operator = self.config.operator
        if operator == "any":
            matched = bool(found)
        elif operator == "all":
            matched = len(found) == len(self._terms)
        else:
            matched = not found
        return SignalResult(
            self.family,
            self.name,
            matched=matched,
            score=1.0 if matched else 0.0,
            label=found[0] if found else None,
        )
