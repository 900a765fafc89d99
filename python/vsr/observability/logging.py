"""structlog set-up: JSON lines in containers, readable console output locally.

Every module logs through ``structlog.get_logger(__name__)``; events are snake_case facts with
key/values. Per-request context (``request_id``) is bound with ``bind_request_id`` through
contextvars, so every line logged while a stream is handled carries it without passing it around.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries (aiohttp, grpc) log through the standard library: keep them at warning and above
    # so the access log of every request does not drown the router's own events.
    logging.basicConfig(
        level=max(numeric_level, logging.WARNING),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )


def bind_request_id(request_id: str) -> None:
    """Attach ``request_id`` to every log line of the current task (a stream runs in one task)."""
    structlog.contextvars.bind_contextvars(request_id=request_id)


def clear_request_context() -> None:
    structlog.contextvars.clear_contextvars()
