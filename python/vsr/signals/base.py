"""What every signal family implements, and the registry that maps a config ``type`` to it.

A signal reads the classified text (and, if it is classifier-backed, the outputs of the encoder
heads it declared in ``head_needs``) and returns a ``SignalResult``. Signals never call a model
themselves: the engine gathers every head the request needs, runs each encoder once, and hands the
outputs over through ``SignalInputs``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from vsr.config.signals import SignalConfig, TextSelection
from vsr.errors import ConfigError
from vsr.inference import EncoderKey, HeadDescription, InferencePool
from vsr.inference.registry import HeadKind
from vsr.signals.result import SignalResult

ConfigT = TypeVar("ConfigT", bound=SignalConfig)


@dataclass(frozen=True, slots=True)
class HeadNeed:
    """A head on an encoder that a signal reads; ``kind`` is what the signal can interpret."""

    model: str
    head: str
    kind: HeadKind


class SignalInputs(Protocol):
    """The encoder outputs for one request's text."""

    def head(self, model: str, head: str) -> Any:
        """The head's output for the text: a vector, a probability row, or a list of entities.

        Where a signal asked for ``model`` to be read in windows, this is the first window's."""
        ...

    def head_windows(self, model: str, head: str) -> list[tuple[int, Any]]:
        """``(character offset, output)`` per window the text was read in (one for most)."""
        ...

    def token_count(self, model: str) -> int: ...


class Signal(ABC, Generic[ConfigT]):
    """One configured signal. ``path`` is its YAML path, for errors found while building it."""

    family: ClassVar[str]
    # Screening signals read each selected message on its own, in windows (see routing.reading);
    # routing signals read the selected messages joined into one text.
    per_message: ClassVar[bool] = False
    # Whether a message of several text parts is also read with the parts joined with nothing
    # (``routing.request.joined_parts``): what a template that loops over parts renders.
    reads_joined_parts: ClassVar[bool] = False

    def __init__(self, config: ConfigT, path: str) -> None:
        self.config = config
        self.path = path

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def max_windows(self) -> int:
        """The most windows one request may have this signal's models read (its config's
        ``max_windows``; one for signals that read a text whole)."""
        return int(getattr(self.config, "max_windows", 1))

    def head_needs(self) -> tuple[HeadNeed, ...]:
        """The encoder heads this signal reads (none for text-only signals)."""
        return ()

    def models(self) -> tuple[str, ...]:
        """Every model this signal reads (heads or token counts)."""
        names = [need.model for need in self.head_needs()] + list(self.token_count_models())
        return tuple(dict.fromkeys(names))

    def text_selection(self, default: TextSelection) -> TextSelection:
        """Which messages this signal reads: the config's ``text`` unless the signal has its own."""
        own = getattr(self.config, "text", None)
        return own if isinstance(own, TextSelection) else default

    def token_count_models(self) -> tuple[str, ...]:
        """Models whose tokenizer must count the text's tokens for this signal."""
        return ()

    def screens_system_prompt(self, text: str) -> bool:
        """Whether this signal reads a system (or developer) message with this text, when its
        text selection includes them; a signal may be told to trust operator-written ones."""
        return True

    def text_windows(self, model: str, text: str) -> Sequence[tuple[int, int]] | None:
        """``(start, end)`` character windows in which ``model`` should read ``text``, for heads
        that must see all of a text longer than the encoder's token limit; None: read it once."""
        return None

    def window_chars(self, model: str) -> int | None:
        """The most characters one of ``model``'s windows holds (``text_windows``), so that short
        messages can share a window; None: the signal reads no windows."""
        return None

    def prepare(self, pool: InferencePool) -> None:
        """Load what the signal needs and check it fits (heads exist, kinds and labels match)."""
        for need in self.head_needs():
            self.check_head(pool, need)

    def check_head(self, pool: InferencePool, need: HeadNeed) -> HeadDescription:
        key = self.encoder_key(pool, need.model)
        try:
            head = pool.registry.resolve_head(key, need.head)
        except KeyError as error:
            raise ConfigError(f"{self.path}.head: {error.args[0]}") from None
        if head.kind != need.kind:
            raise ConfigError(
                f"{self.path}.head: head {head.name!r} of {need.model!r} is a {head.kind} head; "
                f"a {self.family} signal needs a {need.kind} head"
            )
        return head

    def encoder_key(self, pool: InferencePool, model: str) -> EncoderKey:
        from vsr.errors import VsrError

        try:
            return pool.registry.key(model)
        except VsrError as error:
            raise ConfigError(f"{self.path}.model: {error}") from None

    def not_evaluated(self) -> SignalResult:
        """The result when there is no text to read (e.g. a request without a user message)."""
        return SignalResult(self.family, self.name, matched=False, score=0.0)

    def failed(self, text: str, error: BaseException) -> SignalResult:
        """The result when a model this signal reads failed: not matched, with the error noted.
        Signals that can still judge part of the text without the model override this."""
        return SignalResult(
            self.family, self.name, matched=False, score=0.0, error=describe_error(error)
        )

    @abstractmethod
    def evaluate(self, text: str, inputs: SignalInputs) -> SignalResult: ...


def describe_error(error: BaseException) -> str:
    """A short, bounded description for results and logs (never the request's text)."""
    cause = getattr(error, "cause", None)
    error = cause if isinstance(cause, BaseException) else error
    return f"{type(error).__name__}: {str(error)[:200]}"


SIGNAL_FAMILIES: dict[str, type[Signal[Any]]] = {}

SignalClass = TypeVar("SignalClass", bound=type[Signal[Any]])


def register(family: str) -> Callable[[SignalClass], SignalClass]:
    """Class decorator: make a signal family available under its config ``type``."""

    def add(cls: SignalClass) -> SignalClass:
        if family in SIGNAL_FAMILIES:
            raise RuntimeError(f"signal family {family!r} registered twice")
        cls.family = family
        SIGNAL_FAMILIES[family] = cls
        return cls

    return add
