"""What every jailbreak data builder shares about text: the task's labels, the windows its served
signal scores, an English check and a random excerpt of a document."""

from __future__ import annotations

import random

BENIGN = "benign"
JAILBREAK = "jailbreak"
INJECTION = "prompt_injection"
# What the served signal scores at a time (vsr.signals.jailbreak windows); training texts are cut
# to this size so a long text is learnt window by window, as it is scored.
WINDOW_CHARS = 1200
WINDOW_OVERLAP = 200


def window_texts(text: str, window: int = WINDOW_CHARS, overlap: int = WINDOW_OVERLAP) -> list[str]:
    """The windows the signal scores (``vsr.pii.detector.plan_windows``, without the cap)."""
    from vsr.pii.detector import plan_windows

    spans = plan_windows(text, window, overlap, max_windows=10_000)
    return [text[start:end].strip() for start, end in spans if text[start:end].strip()]


def is_english(text: str) -> bool:
    """Whether more than 97% of its letters are ASCII (a cheap test for English)."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) / len(letters) > 0.97


def random_excerpt(text: str, limit: int, rng: random.Random) -> str:
    """At most ``limit`` characters of ``text`` from a random place, cut at spaces."""
    if len(text) <= limit:
        return text
    start = rng.randrange(0, len(text) - limit)
    start = text.find(" ", start) + 1
    return text[start : start + limit].rsplit(" ", 1)[0]
