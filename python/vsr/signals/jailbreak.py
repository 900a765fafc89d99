"""Jailbreak signals: the probability mass a classifier puts on its non-benign labels.

The signal screens every selected message (by default each user message and the system prompt),
each read in overlapping windows the encoder can hold, and the riskiest window decides: an attack
after a long benign preamble is seen, and a long benign text is judged piece by piece rather than
as one mean-pooled vector (whose length alone reads as an attack to a small head).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from vsr.config.signals import JailbreakSignal
from vsr.errors import ConfigError
from vsr.inference import InferencePool
from vsr.pii.detector import plan_windows
from vsr.signals.base import HeadNeed, Signal, SignalInputs, register
from vsr.signals.result import SignalResult

# About 200-250 word pieces of English: inside the default bundle's 256-token limit, so a window is
# read whole. Neighbouring windows overlap so a short attack cut by a boundary is whole in one.
WINDOW_CHARS = 1000
WINDOW_OVERLAP = 200
# The default per request (``max_windows`` in the signal's config), across all screened messages:
# about 8,000 characters of head and tail (see routing.reading.head_and_tail).
MAX_WINDOWS = 8


def jailbreak_windows(text: str, max_windows: int = MAX_WINDOWS) -> list[tuple[int, int]]:
    """The windows one message is read in (also what ``vsr classify --task jailbreak`` uses)."""
    return plan_windows(text, WINDOW_CHARS, WINDOW_OVERLAP, max(max_windows, 2))


def prompt_digest(text: str) -> str:
    """The digest ``trusted_system_prompts`` lists for a system prompt: SHA-256 of its UTF-8 text,
    as vsr reads the message (``vsr digest`` prints it)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@register("jailbreak")
class JailbreakClassifierSignal(Signal[JailbreakSignal]):
    per_message = True

    def head_needs(self) -> tuple[HeadNeed, ...]:
        return (HeadNeed(self.config.model, self.config.head, "sequence"),)

    def screens_system_prompt(self, text: str) -> bool:
        # Exact texts only (their digests): a client that changes one character, or sends the
        # prompt as a user turn, is screened as usual.
        if not self.config.trusted_system_prompts:
            return True
        return prompt_digest(text) not in self.config.trusted_system_prompts

    def text_windows(self, model: str, text: str) -> Sequence[tuple[int, int]] | None:
        if model != self.config.model:
            return None
        return jailbreak_windows(text, self.config.max_windows)

    def window_chars(self, model: str) -> int | None:
        return WINDOW_CHARS if model == self.config.model else None

    def prepare(self, pool: InferencePool) -> None:
        head = self.check_head(pool, self.head_needs()[0])
        benign = set(self.config.benign_labels)
        self._attack_columns = [i for i, label in enumerate(head.labels) if label not in benign]
        if len(self._attack_columns) in (0, len(head.labels)):
            raise ConfigError(
                f"{self.path}.benign_labels: {sorted(benign)} must name some but not all labels "
                f"of {self.config.model!r}; its labels: {', '.join(head.labels)}"
            )
        self.labels = head.labels

    def evaluate(self, text: str, inputs: SignalInputs) -> SignalResult:
        windows = inputs.head_windows(self.config.model, self.config.head)
        rows = np.asarray([row for _, row in windows], dtype=np.float64).reshape(len(windows), -1)
        attack = rows[:, self._attack_columns].sum(axis=1)
        riskiest = int(attack.argmax())
        score = float(attack[riskiest])
        strongest = max(self._attack_columns, key=lambda column: float(rows[riskiest, column]))
        return SignalResult(
            self.family,
            self.name,
            matched=score >= self.config.threshold,
            score=min(score, 1.0),
            label=self.labels[strongest],
        )
