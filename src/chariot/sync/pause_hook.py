"""A test hook for the crash test: inert unless its variable is set; no user sets it.

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
