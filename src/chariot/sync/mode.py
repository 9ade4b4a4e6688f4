"""Which way a sync finds changes, and how a table starts following the log.

``auto`` uses change capture when the source allows it (binary log on, ROW, FULL images and
metadata, replication grants) and every sink can apply changes; otherwise keyset, saying
why. Once a sink holds a log position for a table, losing change capture is an error with
the way out, never a silent fall-back: keyset would miss every update and delete.

The handoff from the first copy to the log: the log position is taken BEFORE the copy and
stored for the table first; the copy (today's keyset reader) then reads rows at least as
new as that position; applying the log from it replays every change since, and as upserts
and deletes by key are idempotent the table converges on the source exactly, with no lock
held on the source. A crash mid-copy keeps the stored position: the copy resumes from its
checkpoint and the log is still applied from the position taken before any row was read.
A table synced by keys before has rows whose later updates and deletes nobody saw: its
first change-capture sync re-copies it (a full refresh of that table in that sink).

With ``CHARIOT_RUN__SNAPSHOT=watermark`` the copy is not made before the log phase: the
position is stored the same way, and the rows the copy would read (after the lowest
checkpoint) are copied in chunks during the log phase (``chariot.cdc.watermark``, DBLog).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from chariot.batch import Key
from chariot.cdc.changes import ChangeBatch, TableChanges
from chariot.cdc.position import LogPosition, current_position
from chariot.cdc.preconditions import (
    ChangeCaptureUnavailable,
    Problem,
    change_capture_problems,
    check_position_available,
)
from chariot.cdc.validate import reject_reason
from chariot.cdc.watermark import SnapshotRequest, check_watermarks
from chariot.config import Settings
from chariot.progress import ProgressCallback
from chariot.sinks.base import ChangeSink, Sink
from chariot.streams import Stream
from chariot.sync.capture import LogPhase, apply_log
from chariot.sync.results import ChangeResult
from chariot.sync.writer import SinkWriter, describe_error, error_kind

log = logging.getLogger(__name__)

Mode = Literal["keyset", "cdc"]


@dataclass(frozen=True)
class ModeDecision:
    mode: Mode
    reason: str | None = None  # why keyset, when auto chose it


def decide_mode(
    settings: Settings,
    requested: str,
    sinks: dict[str, Sink],
    streams: Sequence[Stream],
    *,
    source_name: str = "mysql",
    connection: Any = None,
) -> ModeDecision:
    """keyset or cdc for this run; raises when cdc is required (asked for, or a sink
    already follows the log for a selected table) but not possible. ``connection``: an
    open PyMySQL connection to the source to ask (default, one opened here)."""
    if requested == "keyset":
        return ModeDecision("keyset", "keyset mode was asked for")
    unable = [name for name, sink in sinks.items() if not isinstance(sink, ChangeSink)]
    problems: list[Problem] = []
    if source_name != "mysql" or not settings.mysql.address().is_mysql:
        problems.append(
            Problem(
                "the source is not MySQL or MariaDB (no binary log)",
                "use --mode keyset for this source",
            )
        )
    else:
        with _source_connection(settings, connection) as asking:
            problems = change_capture_problems(asking)
    problems += [
        Problem(f"sink {name} cannot apply changes", f"use --mode keyset, or drop --sink {name}")
        for name in unable
    ]
    if not problems:
        return ModeDecision("cdc")
    if requested == "cdc":
        raise ChangeCaptureUnavailable(problems)
    following = _following(sinks, streams)
    if following:
        raise ChangeCaptureUnavailable(
            [
                *problems,
                Problem(
                    f"{', '.join(following)} already sync by change capture; keyset would "
                    "miss updates and deletes",
                    "restore change capture, or go back to keys for good with "
                    "`chariot sync --mode keyset --full-refresh`",
                ),
            ]
        )
    return ModeDecision("keyset", problems[0].message)


def _following(sinks: dict[str, Sink], streams: Sequence[Stream]) -> list[str]:
    names = {stream.name for stream in streams}
    following = []
    for name, sink in sinks.items():
        if not isinstance(sink, ChangeSink):
            continue
        try:
            held = sink.log_positions()
        except Exception:  # an unreachable sink fails on its first table, as it always did
            log.debug("log positions unreadable", extra={"sink": name}, exc_info=True)
            continue
        following += [f"{name}:{table}" for table in sorted(held) if table in names]
    return following


@dataclass
class CaptureStart:
    """Where each sink stands in the log for each selected table, and what starts now."""

    settings: Settings
    start: LogPosition  # taken before any row of this run is read
    positions: dict[str, dict[str, LogPosition]]  # sink -> table -> held position
    refresh: dict[str, set[str]] = field(default_factory=dict)  # table -> sinks re-copying
    starting: dict[str, set[str]] = field(default_factory=dict)  # table -> sinks starting
    recopied: list[str] = field(default_factory=list)
    # Sinks whose positions could not be read: they neither start nor apply the log this
    # run (starting would store a newer position over the real one and skip changes).
    unknown: dict[str, BaseException] = field(default_factory=dict)
    # sink -> tables whose copy finished after their position was stored (``log_copied``).
    copied: dict[str, set[str]] = field(default_factory=dict)
    # Watermark snapshots: first copies made in chunks during the log phase.
    chunked: bool = False
    snapshots: list[SnapshotRequest] = field(default_factory=list)
    connection: Any = None  # the caller's open source connection, if it gave one

    @classmethod
    def plan(
        cls,
        settings: Settings,
        writers: list[SinkWriter],
        streams: Sequence[Stream],
        *,
        full_refresh: bool,
        connection: Any = None,
    ) -> CaptureStart:
        positions: dict[str, dict[str, LogPosition]] = {}
        copied: dict[str, set[str]] = {}
        unknown: dict[str, BaseException] = {}
        for writer in writers:
            sink = writer.sink
            assert isinstance(sink, ChangeSink)
            try:
                positions[writer.name] = sink.log_positions()
                copied[writer.name] = sink.log_copied()
            except Exception as error:  # this sink fails (its first table says how)
                unknown[writer.name] = error
        chunked = settings.run.snapshot == "watermark"
        if chunked:
            check_watermarks(settings)  # a missing table or grant stops here, nothing done
        with _source_connection(settings, connection) as asking:
            if not full_refresh:
                _check_not_purged(asking, positions, streams)
            start = current_position(asking)
        plan = cls(settings, start, positions, chunked=chunked, unknown=unknown, copied=copied)
        plan.connection = connection
        for stream in streams:
            for writer in writers:
                if writer.name in unknown:
                    continue
                held = positions.get(writer.name, {})
                if not full_refresh and stream.name in held:
                    continue
                plan.starting.setdefault(stream.name, set()).add(writer.name)
                if full_refresh or _has_rows(writer, stream):
                    plan.refresh.setdefault(stream.name, set()).add(writer.name)
                    if not full_refresh:
                        plan.recopied.append(f"{writer.name}:{stream.name}")
        return plan

    def positioned(self, table: str) -> set[str]:
        """Sinks that already follow the log for ``table`` (and keep doing so)."""
        return {
            sink
            for sink, held in self.positions.items()
            if table in held and sink not in self.starting.get(table, set())
        }

    def copied_for(self, table: str) -> set[str]:
        """Sinks following the log for ``table`` whose copy of it finished: their keyset
        pass is skipped. Every row above their checkpoint was inserted (or moved there)
        after the copy read past it, so after their log position: the log phase writes it.
        Reading it by keys too would write it twice (once by keys, once from the log),
        and a new row could no longer be CREATEd by the log (``chariot.sinks.neo4j.proof``)."""
        return {sink for sink in self.positioned(table) if table in self.copied.get(sink, set())}

    def start_log(self, writer: SinkWriter, stream: Stream) -> None:
        """Once the sink is prepared for the table (emptied if re-copied): store the start."""
        if writer.name in self.starting.get(stream.name, set()):
            sink = writer.sink
            assert isinstance(sink, ChangeSink)
            sink.start_log(stream, self.start)

    def snapshot(self, stream: Stream, after: Key | None, sinks: set[str]) -> None:
        """Copy ``stream`` after ``after`` into ``sinks`` in chunks during the log phase."""
        self.snapshots.append(SnapshotRequest(stream, after, frozenset(sinks)))

    def apply(
        self,
        writers: list[SinkWriter],
        streams: Sequence[Stream],
        *,
        follow: bool,
        stop: threading.Event | None,
        progress: ProgressCallback | None,
    ) -> list[ChangeResult]:
        """The log phase for every sink still working, up to the log's end now."""
        sinks: dict[str, ChangeSink] = {}
        positions: dict[str, dict[str, LogPosition]] = {}
        unreadable: list[ChangeResult] = []
        for writer in writers:
            if writer.failure is not None:
                continue
            if writer.name in self.unknown:
                error = self.unknown[writer.name]
                unreadable.append(
                    ChangeResult(
                        sink=writer.name,
                        status="failed",
                        error=f"its log positions could not be read: {describe_error(error)}",
                        error_kind=error_kind(error),
                        error_hint="fix the cause and re-run `chariot sync`",
                    )
                )
                continue
            sink = writer.sink
            assert isinstance(sink, ChangeSink)
            sinks[writer.name] = sink
            positions[writer.name] = sink.log_positions()
        with _source_connection(self.settings, self.connection) as asking:
            stop_at = current_position(asking)
        if not follow and not self.snapshots:
            caught_up = _caught_up(positions, streams, stop_at)
            if caught_up is not None:
                return unreadable + caught_up
        foreign_keys = _foreign_keys(self.settings, streams)
        phase = LogPhase(
            settings=self.settings,
            streams=streams,
            sinks=sinks,
            positions=positions,
            validate=reject_reason,
            foreign_keys=foreign_keys,
            follow=follow,
            stop=stop or threading.Event(),
            progress=progress,
            snapshots=self.snapshots,
        )
        try:
            return unreadable + apply_log(phase, stop_at)
        finally:
            if foreign_keys is not None:
                foreign_keys.close()


@contextmanager
def _source_connection(settings: Settings, given: Any) -> Iterator[Any]:
    """``given`` while it is open (left open: its owner closes it; its transaction ends
    here, so no later read starts in an old snapshot), or a connection of its own."""
    if given is not None and getattr(given, "open", False):
        yield given
        given.commit()
        return
    from chariot.connections import mysql_connect

    connection = mysql_connect(settings.mysql)
    try:
        yield connection
    finally:
        connection.close()


def _caught_up(
    positions: dict[str, dict[str, LogPosition]], streams: Sequence[Stream], end: LogPosition
) -> list[ChangeResult] | None:
    """When every sink's position for every selected table is at the log's end already,
    the log phase's results without reading the log (nothing was written to it since);
    None when there is something to read."""
    names = {stream.name for stream in streams}
    results = []
    for sink, held in positions.items():
        mine = [position for table, position in held.items() if table in names]
        if not mine:
            continue  # apply_log leaves out a sink that follows none of them
        if not all(position.reached(end) for position in mine):
            return None
        lowest = min(mine, key=lambda p: p.sort_key()).render()
        results.append(ChangeResult(sink=sink, position_before=lowest, position_after=lowest))
    return results


def _has_rows(writer: SinkWriter, stream: Stream) -> bool:
    """The sink holds rows of the table already (synced by keys before)."""
    try:
        return writer.sink.checkpoint(stream) is not None
    except Exception:  # unreachable: its table run reports it
        return False


def _check_not_purged(
    connection: Any, positions: dict[str, dict[str, LogPosition]], streams: Sequence[Stream]
) -> None:
    names = {stream.name for stream in streams}
    held = [p for by_table in positions.values() for t, p in by_table.items() if t in names]
    if held:
        check_position_available(connection, min(held, key=lambda p: p.sort_key()))


def _foreign_keys(settings: Settings, streams: Sequence[Stream]) -> _ForeignKeys | None:
    """What applies the source's foreign-key actions, when a reference has one that acts."""
    from chariot.cdc.foreign_keys import ACTING

    acting = any(
        reference.on_delete in ACTING or reference.on_update in ACTING
        for stream in streams
        for reference in stream.references
    )
    return _ForeignKeys(settings, streams) if acting else None


class _ForeignKeys:
    """``foreign_key_changes`` with one source connection per applier thread (a pymysql
    connection must not be shared between threads)."""

    def __init__(self, settings: Settings, streams: Sequence[Stream]) -> None:
        self.settings = settings
        self.streams = streams
        self.local = threading.local()
        self.opened: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, batch: ChangeBatch, sink: ChangeSink) -> list[TableChanges]:
        from chariot.cdc.foreign_keys import foreign_key_changes

        return foreign_key_changes(batch.tables, self.streams, sink, self._source())

    def _source(self) -> Any:
        source = getattr(self.local, "source", None)
        if source is None:
            from chariot.sources.sql import SqlSource

            source = self.local.source = SqlSource(self.settings)
            with self.lock:
                self.opened.append(source)
        return source

    def close(self) -> None:
        for source in self.opened:
            try:
                source.close()
            except Exception:  # closing must not hide the run's result
                log.debug("closing a source failed", exc_info=True)
