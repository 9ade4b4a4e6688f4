"""Test hooks for the crash tests: inert unless their variable is set; no user sets them.

``CHARIOT_TEST_PAUSE_AFTER_BATCHES=N``: a sink writer that has just committed its N-th batch
of the run appends one JSON line (sink, table, checkpoint, batches) to the file named by
``CHARIOT_TEST_PAUSE_MARKER`` and blocks for good, so a test can SIGKILL the process at
exactly that point instead of after a guessed delay.
"""

from __future__ import annotations

import json
import os
import threading

from chariot.batch import Batch

PAUSE_AFTER_BATCHES = "CHARIOT_TEST_PAUSE_AFTER_BATCHES"
PAUSE_MARKER = "CHARIOT_TEST_PAUSE_MARKER"


def pause_after_commit(sink: str, batch: Batch, committed: int) -> None:
    wanted = os.environ.get(PAUSE_AFTER_BATCHES)
    if not wanted or committed != int(wanted):
        return
    line = {
        "sink": sink,
        "table": batch.stream.name,
        "checkpoint": list(batch.last_key),
        "batches": committed,
    }
    with open(os.environ[PAUSE_MARKER], "a", encoding="utf-8") as marker:
        marker.write(json.dumps(line, default=str) + "\n")
    threading.Event().wait()  # until the test kills the process


# Change capture: ``CHARIOT_TEST_PAUSE_AFTER_APPLIES=N`` pauses an applier right after its
# N-th committed batch; ``CHARIOT_TEST_PAUSE_IN_APPLY=N`` pauses a sink inside its N-th
# apply transaction, before the commit (the kill then lands mid-transaction).
PAUSE_AFTER_APPLIES = "CHARIOT_TEST_PAUSE_AFTER_APPLIES"
PAUSE_IN_APPLY = "CHARIOT_TEST_PAUSE_IN_APPLY"
_in_apply: dict[str, int] = {}
_lock = threading.Lock()


def pause_after_apply(sink: str, position: str, committed: int) -> None:
    wanted = os.environ.get(PAUSE_AFTER_APPLIES)
    if wanted and committed == int(wanted):
        _pause({"sink": sink, "position": position, "applies": committed, "where": "after"})


def pause_before_commit(sink: str) -> None:
    """Called by a sink inside its apply transaction, right before it commits."""
    wanted = os.environ.get(PAUSE_IN_APPLY)
    if not wanted:
        return
    with _lock:
        _in_apply[sink] = _in_apply.get(sink, 0) + 1
        count = _in_apply[sink]
    if count == int(wanted):
        _pause({"sink": sink, "applies": count, "where": "inside"})


def _pause(line: dict[str, object]) -> None:
    with open(os.environ[PAUSE_MARKER], "a", encoding="utf-8") as marker:
        marker.write(json.dumps(line, default=str) + "\n")
    threading.Event().wait()  # until the test kills the process
