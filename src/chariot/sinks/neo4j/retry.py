"""Bounded retries for Neo4j work: which errors are worth another attempt, and the backoff."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from chariot.errors import ChariotError, SinkWriteError

T = TypeVar("T")

log = logging.getLogger(__name__)

FIRST_DELAY_SECONDS = 0.25
MAX_DELAY_SECONDS = 4.0


def _driver_message(error: BaseException) -> str:
    """One line from a driver error; "Couldn't connect to X:" keeps the reason after it."""
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]


def is_transient(error: BaseException) -> bool:
    """Deadlocks, lock timeouts, a lost or unavailable server: the same work may succeed.

    ``IncompleteCommit`` (the commit may or may not have happened) is retried too: every
    write of this sink is an idempotent MERGE/SET/DELETE, so running it again is harmless.
    """
    from neo4j.exceptions import IncompleteCommit, Neo4jError, ServiceUnavailable, SessionExpired

    if isinstance(error, ServiceUnavailable | SessionExpired | IncompleteCommit):
        return True
    if isinstance(error, Neo4jError):
        return error.is_retryable()
    return isinstance(error, ConnectionError | TimeoutError)


def backoff_seconds(attempt: int) -> float:
    """Exponential from 0.25 s, capped at 4 s, with jitter so retries do not march in step."""
    delay = min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** (attempt - 1))
    return delay * random.uniform(0.75, 1.25)


def with_retries(work: Callable[[], T], *, attempts: int, what: str) -> T:
    """Run ``work`` up to ``attempts`` times while it fails transiently.

    ``what`` names the sink, table and operation for the one-line error, e.g.
    ``"neo4j sink, table ratings: write"``. A ``ChariotError`` (e.g. ``ConnectionFailed``
    from opening the driver) passes through unchanged.
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except ChariotError:
            raise
        except Exception as error:
            if not is_transient(error):
                raise SinkWriteError(f"{what} failed: {_driver_message(error)}") from error
            if attempt == attempts:
                raise SinkWriteError(
                    f"{what} failed after {attempts} attempt{'s' if attempts > 1 else ''}: "
                    f"{_driver_message(error)}",
                    hint="is Neo4j running and reachable? "
                    "CHARIOT_RUN__MAX_ATTEMPTS sets the attempts",
                ) from error
            delay = backoff_seconds(attempt)
            log.warning(
                "%s: transient error, retrying in %.1f s (attempt %d of %d): %s",
                what,
                delay,
                attempt + 1,
                attempts,
                _driver_message(error),
                extra={"sink": "neo4j", "attempt": attempt},
            )
            time.sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")
