"""An example Chariot sink plugin: one folder per table, one CSV file per batch.

It shows the whole contract a sink needs. Crash safety without transactions: each batch
goes to a file numbered by the batch sequence, then the checkpoint file (key + sequence)
is replaced atomically. A crash between the two leaves a batch file the checkpoint does
not cover; the next run starts from the checkpoint and rewrites that same file number,
so the rows are never counted twice.

Configuration: CHARIOT_CSV_SINK_DIR (default ./chariot-csv).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from chariot.batch import Batch, Key, Reject, WriteResult
from chariot.sinks.base import Sink
from chariot.streams import Stream


class CsvSink(Sink):
    name = "csv"

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.root = Path(os.environ.get("CHARIOT_CSV_SINK_DIR", "chariot-csv"))

    def describe(self) -> str:
        return f"csv files in {self.root}"

    def prepare(self, stream: Stream, *, full_refresh: bool = False) -> None:
        folder = self.root / stream.name
        folder.mkdir(parents=True, exist_ok=True)
        if full_refresh:
            for path in folder.glob("*"):
                path.unlink()

    def checkpoint(self, stream: Stream) -> Key | None:
        state = self._state(stream)
        return tuple(state["key"]) if state else None

    def write(self, batch: Batch) -> WriteResult:
        stream = batch.stream
        sequence = (self._state(stream) or {"sequence": 0})["sequence"] + 1
        folder = self.root / stream.name
        _replace(folder / f"batch-{sequence:08d}.csv", _csv_text(stream, batch.rows))
        rejects = [{"key": list(r.key), "reason": r.reason} for r in batch.rejects]
        if rejects:
            _replace(folder / f"rejects-{sequence:08d}.json", json.dumps(rejects))
        state = {"key": list(batch.last_key), "sequence": sequence}
        _replace(folder / "_checkpoint.json", json.dumps(state))
        return WriteResult(written=len(batch.rows), rejected=list(batch.rejects))

    def stored_checkpoints(self) -> dict[str, Key]:
        found: dict[str, Key] = {}
        for path in self.root.glob("*/_checkpoint.json"):
            found[path.parent.name] = tuple(json.loads(path.read_text())["key"])
        return found

    def recorded_rejects(self, *, limit: int = 100) -> tuple[dict[str, int], list[Reject]]:
        counts: dict[str, int] = {}
        first: list[Reject] = []
        for path in sorted(self.root.glob("*/rejects-*.json")):
            for item in json.loads(path.read_text()):
                counts[path.parent.name] = counts.get(path.parent.name, 0) + 1
                if len(first) < limit:
                    first.append(Reject(path.parent.name, tuple(item["key"]), item["reason"]))
        return counts, first

    def _state(self, stream: Stream) -> dict[str, Any] | None:
        path = self.root / stream.name / "_checkpoint.json"
        return json.loads(path.read_text()) if path.exists() else None


def _csv_text(stream: Stream, rows: list[tuple[Any, ...]]) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(stream.source_columns)
    writer.writerows(rows)
    return buffer.getvalue()


def _replace(path: Path, text: str) -> None:
    """Write then rename: a reader (or a crash) never sees half a file."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
