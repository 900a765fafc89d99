"""Signal configs: what each signal family reads from the request and when it fires.

Every signal has a ``type`` (the family, the discriminator) and a ``name`` (what decisions refer to
as ``{type, name}``). Classifier-backed signals name the model they run (a directory or a built-in
name such as ``vsr-default``) and, for an encoder bundle, the head; signals naming the same model
share one encoder pass per request.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from vsr.config.base import StrictModel

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
SignalName = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")]
# The SHA-256 of a text (its UTF-8 bytes), as 64 lower-case hex digits.
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

# The 14 categories of MMLU-Pro, which vsr's default domain classifier predicts.
MMLU_PRO_CATEGORIES: tuple[str, ...] = (
    "biology",
    "business",
    "chemistry",
    "computer science",
    "economics",
    "engineering",
    "health",
    "history",
    "law",
    "math",
    "other",
    "philosophy",
    "physics",
    "psychology",
)

DEFAULT_CLASSIFIER_BUNDLE = "vsr-default"
DEFAULT_PII_BUNDLE = "vsr-pii"


class TextSelection(StrictModel):
    """Which messages a signal reads.

    ``user_turns``: how many of the most recent user messages (oldest first); ``0`` means all of
    them. ``include_system``: the system (and ``developer``) messages too, in front.
    ``include_tool``: tool results too (documents an agent fetched: where indirect prompt
    injection hides). ``max_chars``: the budget of one request's text for a signal; a longer text
    is read as its first and last halves (the system prompt and the newest turn), which bounds
    the work one request can cause (pattern matching reads ~2 MB/s on one core).
    """

    user_turns: Annotated[int, Field(ge=0)] = 1
    include_system: bool = False
    include_tool: bool = False
    max_chars: Annotated[int, Field(ge=1024)] = 262_144


# What screening signals (jailbreak, PII) read unless configured otherwise: every user message and
# the system prompt, each message on its own, so nothing the client sends in an earlier turn or a
# system message reaches a model unscreened.
SCREENED_MESSAGES = TextSelection(user_turns=0, include_system=True)


class ScreeningSignal(StrictModel):
    """What the screening signals (jailbreak, PII) share: which messages they read and how many
    model windows one request may cost."""

    max_windows: Annotated[int, Field(ge=1, le=256)] = Field(
        default=8,
        description="Windows' worth of text (~1,000 characters each) the model reads per "
        "request; short messages are each read on their own, up to 4x as many windows of no "
        "more characters in all, then neighbours share windows; beyond it the first and the last "
        "halves. Bounds the CPU cost of one long prompt (PII patterns still read the whole text "
        "budget).",
    )
    text: TextSelection = Field(
        default=SCREENED_MESSAGES,
        description="The messages screened, each read on its own in windows (default: every "
        "user message and the system prompt).",
    )


class KeywordSignal(StrictModel):
    """Fires on words or regular expressions in the text.

    ``operator``: ``any`` (at least one matches), ``all`` (every one matches), ``none`` (none
    matches). ``keywords`` match as whole words/phrases; ``patterns`` are Python regexes.
    """

    type: Literal["keyword"]
    name: SignalName
    operator: Literal["any", "all", "none"] = "any"
    keywords: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    patterns: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    case_sensitive: bool = False

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(
                    f"patterns[{index}] {pattern!r} is not a valid regex: {error}"
                ) from None
        return patterns

    @model_validator(mode="after")
    def _has_terms(self) -> KeywordSignal:
        if not self.keywords and not self.patterns:
            raise ValueError("a keyword signal needs at least one of keywords or patterns")
        return self


class DomainSignal(StrictModel):
    """Fires when the domain classifier's top category is one of ``categories`` (default: the
    signal's own name) with probability at least ``threshold``."""

    type: Literal["domain"]
    name: SignalName
    categories: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    threshold: Probability = 0.0
    model: str = DEFAULT_CLASSIFIER_BUNDLE
    head: str = "domain"

    @property
    def category_set(self) -> tuple[str, ...]:
        return self.categories or (self.name,)


class EmbeddingSignal(StrictModel):
    """Fires when the text's embedding is close to the candidate phrases.

    ``aggregation``: ``max`` (the best cosine similarity reaches ``threshold``), ``mean`` (the mean
    similarity does), ``any`` (same test as max, but the score reported is the fraction of
    candidates above the threshold).
    """

    type: Literal["embedding"]
    name: SignalName
    candidates: tuple[Annotated[str, Field(min_length=1)], ...] = Field(min_length=1)
    threshold: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.75
    aggregation: Literal["max", "mean", "any"] = "max"
    model: str = DEFAULT_CLASSIFIER_BUNDLE
    head: str = "embedding"


class JailbreakSignal(ScreeningSignal):
    """Fires when the probability of the non-benign labels reaches ``threshold`` in any window of
    any screened message (the riskiest window decides)."""

    type: Literal["jailbreak"]
    name: SignalName
    threshold: Probability = 0.7
    benign_labels: tuple[str, ...] = ("benign",)
    model: str = DEFAULT_CLASSIFIER_BUNDLE
    head: str = "jailbreak"
    trusted_system_prompts: tuple[Sha256Hex, ...] = Field(
        default=(),
        description="SHA-256 digests (hex) of system prompts the operator's own applications "
        "send: a system or developer message whose text hashes to one of them is not read by "
        "this signal (the PII signal still reads it); any other system message, and every user "
        "turn, is. For deployments whose applications, not their clients, write the system "
        "prompt; `vsr digest FILE` prints a prompt's digest.",
    )


class PiiSignal(ScreeningSignal):
    """Fires when PII entities of ``entity_types`` (all types when empty) are found; model spans
    count from ``threshold``. Types are the canonical names of ``vsr.pii.entities``
    (``EMAIL_ADDRESS``, ``US_SSN``...), compared case-insensitively. ``use_patterns`` adds
    validated pattern matches (credit cards, SSNs, IBANs, IP addresses)."""

    type: Literal["pii"]
    name: SignalName
    entity_types: tuple[Annotated[str, Field(min_length=1)], ...] = ()
    threshold: Probability = 0.5
    use_patterns: bool = True
    model: str = DEFAULT_PII_BUNDLE
    head: str = "pii"


class ContextSignal(StrictModel):
    """Fires when the text's token count lies in ``[min_tokens, max_tokens]`` (either bound may
    be left out). Tokens are counted with ``model``'s tokenizer."""

    type: Literal["context"]
    name: SignalName
    min_tokens: Annotated[int, Field(ge=0)] = 0
    max_tokens: Annotated[int, Field(ge=0)] | None = None
    model: str = DEFAULT_CLASSIFIER_BUNDLE

    @model_validator(mode="after")
    def _range_ordered(self) -> ContextSignal:
        if self.max_tokens is not None and self.max_tokens < self.min_tokens:
            raise ValueError(
                f"max_tokens ({self.max_tokens}) must not be below min_tokens ({self.min_tokens})"
            )
        return self


SignalConfig = Annotated[
    KeywordSignal | DomainSignal | EmbeddingSignal | JailbreakSignal | PiiSignal | ContextSignal,
    Field(discriminator="type"),
]

SIGNAL_TYPES: tuple[str, ...] = ("keyword", "domain", "embedding", "jailbreak", "pii", "context")

ClassifierSignal = DomainSignal | EmbeddingSignal | JailbreakSignal | PiiSignal
