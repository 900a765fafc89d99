"""structlog set-up: JSON lines in containers, readable console output locally, and silence
when vsr is used as a library.

Every module logs through ``structlog.get_logger(__name__)``; events are snake_case facts with
key/values. Per-request context (``request_id``) is bound with ``bind_request_id`` through
contextvars, so every line logged while a stream is handled carries it without passing it around.

Two set-ups: the server and the CLI call ``configure_logging`` (structured lines to stderr);
``import vsr`` calls ``log_through_stdlib``, so in someone else's program vsr's events are
standard ``logging`` records of ``vsr.*`` loggers, shown only when that program configures logging.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any, Literal, TextIO, cast

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


DEBUG, INFO = logging.DEBUG, logging.INFO


# What ``structlog.get_logger`` hands out: a proxy that stands for the logger configuration builds.
_LAZY_PROXY = type(structlog.get_logger())


def enabled_for(logger: Any, level: int) -> bool:
    """Whether ``logger`` (a structlog logger, or the lazy proxy ``get_logger`` returns) emits
    events at ``level``. A filtered-out call still costs building its fields (rounding, formatting):
    hot paths ask first. True when the logger cannot tell (a wrapper class without the method).

    A proxy is asked through ``bind()``, which is the logger it stands for, built on first use and
    then kept (``cache_logger_on_first_use``, as the server configures it): asking the proxy for
    the method instead misses on it, goes through its ``__getattr__`` and then ``bind()`` anyway,
    ~1 us per call, twice per forwarded request."""
    if type(logger) is _LAZY_PROXY:
        logger = logger.bind()
    check = getattr(logger, "is_enabled_for", None)
    return True if check is None else bool(check(level))


class _CurrentStderr:
    """``sys.stderr`` as it is when a line is written, not when logging was configured, so a
    replaced stream (pytest's capture, a redirect) never leaves loggers on a closed one."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(log_format: Literal["json", "console"] = "json", level: str = "info") -> None:
    """Route structlog (and the standard library's loggers) to stderr in one format."""
    numeric_level = _LEVELS.get(level, logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if log_format == "json":
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=True,
    )
    # Libraries (aiohttp, grpc) log through the standard library: keep them at warning and above
    # so the access log of every request does not drown the router's own events.
    logging.basicConfig(
        level=max(numeric_level, logging.WARNING),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )


LIBRARY_LOGGER = "vsr"


def _message(logger: object, method: str, event: structlog.types.EventDict) -> str:
    """``route_selected decision=math model=phi4-mini``: the event, then its fields in logfmt."""
    fields = {key: value for key, value in event.items() if key != "event"}
    rendered = _LOGFMT(logger, method, fields) if fields else ""
    return f"{event.get('event', '')} {rendered}".rstrip()


_LOGFMT = structlog.processors.LogfmtRenderer(bool_as_flag=False)


def _drop_disabled(
    logger: object, method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """structlog's ``filter_by_level``, tolerant of a logger factory the application swaps in
    (a partial ``structlog.configure`` keeps these processors)."""
    if isinstance(logger, logging.Logger):
        level = logging.getLevelName(method.upper())
        if isinstance(level, int) and not logger.isEnabledFor(level):
            raise structlog.DropEvent
    return event


def log_through_stdlib() -> None:
    """The library default: vsr's events become records of the standard-library logger named
    after their module (``vsr.routing.engine``...), so they follow the application's logging
    configuration, and print nothing when it has none (a ``NullHandler`` on ``vsr`` keeps Python's
    last-resort handler quiet). structlog is left alone if the application configured it."""
    logging.getLogger(LIBRARY_LOGGER).addHandler(logging.NullHandler())
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            _drop_disabled,  # a disabled level costs one isEnabledFor call
            structlog.contextvars.merge_contextvars,
            _message,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a program that configures structlog after importing vsr takes over.
        cache_logger_on_first_use=False,
    )


def _request_id_variable() -> contextvars.ContextVar[Any]:
    """structlog's own context variable for ``request_id``, the one ``bind_contextvars`` sets and
    ``merge_contextvars`` reads, found once (in a throwaway context, so nothing stays bound)."""
    tokens = contextvars.Context().run(structlog.contextvars.bind_contextvars, request_id=None)
    return tokens["request_id"].var


_REQUEST_ID = _request_id_variable()


def bind_request_id(request_id: str) -> None:
    """Attach ``request_id`` to every log line of the current task (a stream runs in one task).

    One ``ContextVar.set`` on structlog's variable: ``bind_contextvars`` would build its key, a
    dict of tokens and a keyword dict for every stream, whether or not a line is ever written."""
    _REQUEST_ID.set(request_id)


def clear_request_context() -> None:
    structlog.contextvars.clear_contextvars()
