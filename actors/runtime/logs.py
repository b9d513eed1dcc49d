"""structlog setup: JSON lines to the actor's log file, readable lines on a terminal."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

import structlog


class _JsonTee:
    """Processor that appends the event as one JSON line to a file, then passes it on."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, _logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        self.stream.write(json.dumps(event, default=str) + "\n")
        self.stream.flush()
        return event


def setup(actor: str, log_dir: Path | None, level: str = "info") -> structlog.stdlib.BoundLogger:
    """Configure structlog for this process and return a logger bound to `actor`."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if log_dir is not None:
        stream = (log_dir / f"{actor}.log").open("a", encoding="utf-8")
        processors.append(_JsonTee(stream))
    if sys.stderr.isatty():
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    else:
        processors.append(structlog.processors.JSONRenderer())
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger().bind(actor=actor)
