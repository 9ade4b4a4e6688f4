"""Structured logging: human lines or one JSON object per line on stderr.

Library modules log with ``logging.getLogger(__name__)`` and pass context in ``extra``
(``run_id``, ``table``, ``sink``, counts, durations); this module only decides the format.
Nothing a user needs is only in a log: results are returned and rendered by the CLI.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from typing import Any

from chariot.redaction import redact

# Attributes every LogRecord has; anything else came from ``extra=`` and is context.
_STANDARD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

RUN_ID = uuid.uuid4().hex[:12]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "run_id": RUN_ID,
            "message": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                payload[key] = _redacted(value)
        if record.exc_info:
            payload["exception"] = redact(self.formatException(record.exc_info))
        # Values are redacted before encoding: a secret with quotes or non-ASCII characters
        # would no longer match once escaped by json.dumps.
        return json.dumps(payload, default=lambda value: redact(str(value)))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
        )
        line = f"{record.levelname.lower():7s} {record.getMessage()}"
        return redact(f"{line}  [{context}]" if context else line)


def _redacted(value: Any) -> Any:
    """A log context value with every secret masked, its JSON shape kept."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(*, verbosity: int = 0, log_format: str = "text") -> None:
    """-q (verbosity -1): errors only; default: warnings; -v: info; -vv: debug."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    if log_format == "json" and verbosity == 0:
        level = logging.INFO  # asking for structured logs means wanting the run's events
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger("chariot")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # The Neo4j driver logs every dropped connection at ERROR; Chariot reports those
    # failures itself, once, so the driver's own lines only show with -vv.
    logging.getLogger("neo4j").setLevel(logging.DEBUG if verbosity >= 2 else logging.CRITICAL)
