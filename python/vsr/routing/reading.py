"""What each signal reads from a request, and the encoder outputs it gets back.

A routing signal reads one text (by default the newest user message). A screening signal
(jailbreak, PII) reads every selected message on its own, each cut into windows the encoder can
hold, so a long prompt is read whole and an attack after a long benign preamble is still seen.
Every encoder then runs once per request over the distinct texts all its signals need (in the
common case, one message: one text), and each signal gets its own view of the outputs.

The work per request is bounded: a signal reads at most ``max_chars`` characters of its text
(``TextSelection.max_chars``, 256 Ki by default: beyond it the first and last halves) and its
models at most ``max_windows`` windows of that, again the first and the last halves in reading
order (the system prompt comes first and the newest user turn last, so both are always read).
The budget is in characters rather than messages (nine one-line turns once hid an attack in
the fifth): while the windows hold no more characters than ``max_windows`` full windows, up to
``SHORT_MESSAGE_FACTOR`` times as many are read, each message on its own as the models were
calibrated; past that, neighbouring windows that fit in one model window together are read as
one (``pack_windows``, merging as little as the limit allows) before any is left out. Packing
mixes messages in one window, which flags benign chats more often (13 of 120 twelve-turn
conversations against 9 with each turn read alone), so it is the last resort, not the rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from vsr.config.signals import TextSelection
from vsr.inference import EncoderKey
from vsr.routing.request import SYSTEM_ROLES, ChatRequest, joined_parts
from vsr.routing.result import SignalResult
from vsr.signals import Signal
from vsr.signals.base import describe_error

# signal_failed keeps the logger name it had when the engine evaluated signals itself.
log = structlog.get_logger("vsr.routing.engine")

# Screened messages are joined with a blank line: no pattern spans two messages.
MESSAGE_SEPARATOR = "\n\n"
# Messages shorter than a window: a request whose windows hold no more characters than
# ``max_windows`` full windows may have this many times as many, each message read on its own.
SHORT_MESSAGE_FACTOR = 4


@dataclass(frozen=True)
class SignalReading:
    """One signal's input: ``text`` (what it evaluates) and the ``(start, end)`` character
    windows of ``text`` its models read (one window spanning ``text`` for most signals)."""

    text: str
    windows: tuple[tuple[int, int], ...]

    def window_texts(self) -> list[str]:
        return [self.text[start:end] for start, end in self.windows]


class SignalPlan:
    """How one signal reads a request, fixed when the engine is built: its text selection and the
    models whose windows it plans (``plan.read(request)`` per request)."""

    __slots__ = ("models", "selection", "signal")

    def __init__(self, signal: Signal[Any], default_text: TextSelection) -> None:
        self.signal = signal
        self.selection = signal.text_selection(default_text)
        self.models = signal.models()

    def read(self, request: ChatRequest, texts: dict[int, str] | None = None) -> SignalReading:
        """What the signal reads of ``request``; ``texts`` memoises routing texts by selection
        for the request's other signals (and its cache text)."""
        signal, selection = self.signal, self.selection
        if not signal.per_message:
            text = within_budget(routing_text(request, selection, texts), selection.max_chars)
            return SignalReading(text, tuple(self._windows(text, 0)))
        pieces: list[str] = []
        for index, text in request.selected_messages(selection):
            message = request.messages[index]
            if message.get("role") in SYSTEM_ROLES and not signal.screens_system_prompt(text):
                continue
            pieces.append(text)
            joined = joined_parts(message.get("content")) if signal.reads_joined_parts else None
            if joined is not None and joined != text:
                pieces.append(joined)
        text = MESSAGE_SEPARATOR.join(pieces)
        if len(text) > selection.max_chars:
            # Over budget: read the head and tail of the conversation as one text.
            text = within_budget(text, selection.max_chars)
            pieces = [text]
        windows: list[tuple[int, int]] = []
        offset = 0
        for piece in pieces:
            windows += self._windows(piece, offset)
            offset += len(piece) + len(MESSAGE_SEPARATOR)
        chars, limit = self._window_chars(), signal.max_windows
        if chars is not None and sum(end - start for start, end in windows) <= limit * chars:
            # Short messages that fit in the budget's characters: each read on its own, up to
            # SHORT_MESSAGE_FACTOR times as many windows (their tokens cost what the budget does).
            limit *= SHORT_MESSAGE_FACTOR
        windows = pack_windows(windows, chars, limit)
        return SignalReading(text, tuple(head_and_tail(windows, limit)))

    def _windows(self, text: str, offset: int) -> list[tuple[int, int]]:
        planned = None
        for model in self.models:
            planned = self.signal.text_windows(model, text)
            if planned is not None:
                break
        if planned is None or not planned:
            planned = [(0, len(text))]
        return [(start + offset, end + offset) for start, end in planned]

    def _window_chars(self) -> int | None:
        """The window size of the model that plans this signal's windows (None: no windows)."""
        for model in self.models:
            chars = self.signal.window_chars(model)
            if chars is not None:
                return chars
        return None


def plan_reading(
    signal: Signal[Any], request: ChatRequest, default_text: TextSelection
) -> SignalReading:
    """What ``signal`` reads of ``request`` (``default_text``: the config's ``text`` selection)."""
    return SignalPlan(signal, default_text).read(request)


def routing_text(
    request: ChatRequest, selection: TextSelection, texts: dict[int, str] | None = None
) -> str:
    """``request.routing_text(selection)``, memoised in ``texts`` (one request's) by selection."""
    if texts is None:
        return request.routing_text(selection)
    text = texts.get(id(selection))
    if text is None:
        text = texts[id(selection)] = request.routing_text(selection)
    return text


def within_budget(text: str, max_chars: int) -> str:
    """``text``, or its first and last halves when it is longer than ``max_chars``."""
    if len(text) <= max_chars:
        return text
    half = (max_chars - len(MESSAGE_SEPARATOR)) // 2
    return text[:half] + MESSAGE_SEPARATOR + text[len(text) - half :]


def pack_windows(
    windows: Sequence[tuple[int, int]], chars: int | None, limit: int
) -> list[tuple[int, int]]:
    """At most ``limit`` windows if merging neighbours (in reading order) into spans of at most
    ``chars`` characters, the blank lines between messages included, can get there; otherwise as
    few as that allows. Spans are kept as short as the limit permits (the smallest cap that fits),
    so each message stays as nearly on its own as the budget allows: the model was trained and
    calibrated on single prompts. None: unchanged. A long message's own windows are each about
    ``chars`` long already and stay apart."""
    if chars is None or len(windows) <= limit:
        return list(windows)
    low, high = max(end - start for start, end in windows), chars
    if low >= high or len(merge_windows(windows, high)) > limit:
        return merge_windows(windows, high)
    while low < high:  # the smallest cap whose packing fits in the limit
        middle = (low + high) // 2
        if len(merge_windows(windows, middle)) <= limit:
            high = middle
        else:
            low = middle + 1
    return merge_windows(windows, high)


def merge_windows(windows: Sequence[tuple[int, int]], cap: int) -> list[tuple[int, int]]:
    """Neighbouring windows merged greedily while the span they cover fits in ``cap``."""
    packed: list[tuple[int, int]] = []
    for start, end in windows:
        if packed and end - packed[-1][0] <= cap:
            packed[-1] = (packed[-1][0], max(end, packed[-1][1]))
        else:
            packed.append((start, end))
    return packed


def head_and_tail(windows: Sequence[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """At most ``limit`` windows: all of them, or the first and the last halves."""
    if len(windows) <= limit:
        return list(windows)
    head = (limit + 1) // 2
    return [*windows[:head], *windows[len(windows) - (limit - head) :]]


class EncoderFailed(Exception):
    """An encoder run a signal depends on failed; ``cause`` is what it raised."""

    def __init__(self, key: EncoderKey, cause: BaseException) -> None:
        super().__init__(f"encoder {key.path} failed: {type(cause).__name__}: {cause}")
        self.key = key
        self.cause = cause


@dataclass
class EncoderRun:
    """One encoder's pass over the request's distinct texts: per head, one output per text."""

    texts: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    heads: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None

    def add(self, text: str) -> None:
        if text not in self.rows:
            self.rows[text] = len(self.texts)
            self.texts.append(text)

    def output(self, key: EncoderKey, head: str, text: str) -> Any:
        if self.error is not None:
            raise EncoderFailed(key, self.error)
        return self.heads[head][self.rows[text]]


@dataclass
class SignalView:
    """The encoder outputs for one signal's reading; implements ``signals.SignalInputs``."""

    reading: SignalReading
    keys: Mapping[str, EncoderKey]
    runs: Mapping[EncoderKey, EncoderRun]
    token_counts: Mapping[tuple[EncoderKey, str], int | BaseException]

    def head(self, model: str, head: str) -> Any:
        key = self.keys[model]
        return self.runs[key].output(key, head, self.reading.window_texts()[0])

    def head_windows(self, model: str, head: str) -> list[tuple[int, Any]]:
        key = self.keys[model]
        run = self.runs[key]
        return [
            (start, run.output(key, head, self.reading.text[start:end]))
            for start, end in self.reading.windows
        ]

    def token_count(self, model: str) -> int:
        key = self.keys[model]
        count = self.token_counts[(key, self.reading.text)]
        if isinstance(count, BaseException):
            raise EncoderFailed(key, count)
        return count


def evaluate_signals(
    signals: Sequence[Signal[Any]],
    needs_model: Sequence[bool],
    readings: Sequence[SignalReading],
    keys: Mapping[str, EncoderKey],
    runs: Mapping[EncoderKey, EncoderRun],
    counts: Mapping[tuple[EncoderKey, str], int | BaseException],
) -> list[SignalResult]:
    """Each signal's result on its reading, in order: not evaluated when it reads a model and
    has no text, failed when a model it reads (or the signal itself) failed."""
    results = []
    for signal, reads_model, reading in zip(signals, needs_model, readings, strict=True):
        if reads_model and not reading.text:
            results.append(signal.not_evaluated())
            continue
        view = SignalView(reading, keys, runs, counts)
        try:
            results.append(signal.evaluate(reading.text, view))
        except Exception as error:  # a model it reads failed, or the signal itself did
            log.warning(
                "signal_failed",
                signal_type=signal.family,
                signal=signal.name,
                error=describe_error(error),
            )
            results.append(signal.failed(reading.text, error))
    return results
