"""Where every sink stands, for ``chariot status``: checkpoints, lag, recorded rejects.

A sink or source that cannot be reached is reported as such; status never fails on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from chariot.batch import Key
from chariot.cdc.lag import measure_lag
from chariot.cdc.position import LogPosition
from chariot.config import Settings
from chariot.errors import ChariotError
from chariot.plugins import load_sink, load_source
from chariot.project.streams import default_streams
from chariot.sinks.base import ChangeSink
from chariot.sources.base import Source
from chariot.streams import Stream
from chariot.sync.writer import describe_error

log = logging.getLogger(__name__)

FIRST_REJECTS = 5


@dataclass
class SyncState:
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    capture: list[dict[str, Any]] = field(default_factory=list)  # per sink following the log


def sync_state(
    settings: Settings,
    *,
    streams: tuple[Stream, ...] | None = None,
    source_name: str = "mysql",
) -> SyncState:
    if streams is None:
        streams = default_streams()
    state = SyncState()
    marks: dict[str, dict[str, Key]] = {}
    positions: dict[str, dict[str, LogPosition]] = {}
    for name in settings.run.sinks:
        try:
            marks[name], positions[name] = _read_sink(settings, name, state)
        except Exception as error:  # any sink failure is reported, never fatal for status
            state.errors[name] = describe_error(error)
    for name, held in positions.items():
        if held:
            state.capture.append(_capture_state(settings, name, held, streams))
    lags = _Lags(settings, source_name)
    try:
        for name, stored in marks.items():
            for stream in streams:
                mark = stored.get(stream.name)
                state.checkpoints.append(
                    {
                        "sink": name,
                        "table": stream.name,
                        "high_water_mark": list(mark) if mark else None,
                        "lag": lags.count(stream, mark),
                    }
                )
    finally:
        lags.close()
    return state


def _capture_state(
    settings: Settings, sink: str, held: dict[str, LogPosition], streams: tuple[Stream, ...]
) -> dict[str, Any]:
    """A sink that follows the log: its positions and how far behind the source it is."""
    lowest = min(held.values(), key=lambda p: p.sort_key())
    item: dict[str, Any] = {
        "sink": sink,
        "mode": "cdc",
        "position": lowest.render(),
        "positions": {table: position.render() for table, position in sorted(held.items())},
    }
    try:
        following = [stream for stream in streams if stream.name in held]
        lag = measure_lag(settings, following, lowest)
    except ChariotError as error:
        item["lag_error"] = describe_error(error)
        return item
    item.update(
        source_position=lag.source_position,
        lag_transactions=lag.transactions,
        lag_changes=lag.changes,
        lag_seconds=lag.seconds,
        lag_complete=lag.complete,
    )
    return item


def _read_sink(
    settings: Settings, name: str, state: SyncState
) -> tuple[dict[str, Key], dict[str, LogPosition]]:
    with load_sink(name)(settings) as sink:
        stored = sink.stored_checkpoints()
        positions = sink.log_positions() if isinstance(sink, ChangeSink) else {}
        counts, first = sink.recorded_rejects(limit=FIRST_REJECTS)
    state.rejects.append(
        {
            "sink": name,
            "counts": counts,
            "first": [{"table": r.table, "key": list(r.key), "reason": r.reason} for r in first],
        }
    )
    return stored, positions


class _Lags:
    """Source rows after a checkpoint, counted once per (table, checkpoint)."""

    def __init__(self, settings: Settings, source_name: str) -> None:
        self.settings = settings
        self.source_name = source_name
        self.source: Source | None = None
        self.unreachable = False
        self.counted: dict[tuple[str, Key | None], int | None] = {}

    def count(self, stream: Stream, mark: Key | None) -> int | None:
        key = (stream.name, tuple(mark) if mark else None)
        if key not in self.counted:
            self.counted[key] = self._count(stream, key[1])
        return self.counted[key]

    def _count(self, stream: Stream, mark: Key | None) -> int | None:
        if self.unreachable:
            return None
        try:
            if self.source is None:
                self.source = load_source(self.source_name)(self.settings)
            return self.source.count(stream, after=mark)
        except ChariotError as error:
            # A missing table is one table's problem; an unreachable server is everyone's.
            self.unreachable = "reading table" not in str(error)
            log.info("lag unknown", extra={"table": stream.name, "error": str(error)})
            return None

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
