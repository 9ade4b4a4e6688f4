"""How a long library call tells its caller how far it is: one event type, one callback.

The library only reports; the CLI decides whether and how to show it (``cli/progress.py``).
Callbacks may be called from worker threads, so they must be quick and thread-safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

log = logging.getLogger(__name__)

State = Literal["running", "done", "failed"]


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units of the task named ``task`` (total None: not known yet)."""

    task: str  # what is progressing, e.g. "ratings -> postgres"; the same name updates it
    done: int
    total: int | None
    unit: str = "rows"  # rows, segments, partitions, bytes, ...
    state: State = "running"  # "done"/"failed": the task will not move again


ProgressCallback = Callable[[Progress], None]


def notify(
    callback: ProgressCallback | None,
    task: str,
    done: int,
    total: int | None,
    *,
    unit: str = "rows",
    state: State = "running",
) -> None:
    """Tell ``callback`` (if any); a broken progress display must never fail the work."""
    if callback is None:
        return
    try:
        callback(Progress(task=task, done=done, total=total, unit=unit, state=state))
    except Exception:
        log.debug("progress callback failed", exc_info=True)


def prefixed(callback: ProgressCallback | None, prefix: str) -> ProgressCallback | None:
    """The same callback, with ``prefix`` before every task name (``run`` names the stage)."""
    if callback is None:
        return None
    forward = callback

    def renamed(event: Progress) -> None:
        forward(replace(event, task=f"{prefix}{event.task}"))

    return renamed
