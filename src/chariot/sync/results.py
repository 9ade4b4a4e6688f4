"""What a sync reports: per table and sink, counts, durations, checkpoints and failures."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from chariot.errors import SinkWriteError
from chariot.keys import JsonKey

SinkStatus = Literal["ok", "failed", "skipped", "dry-run"]


class SinkTableResult(BaseModel):
    """One sink's part of one table."""

    table: str
    sink: str
    status: SinkStatus = "ok"
    checkpoint_before: JsonKey | None = Field(
        None, description="high-water mark (key values) before the run; null: nothing yet"
    )
    checkpoint_after: JsonKey | None = None
    rows_pending: int = Field(0, description="source rows after checkpoint_before")
    rows_written: int = 0
    rows_rejected: int = 0
    seconds: float = 0.0
    error: str | None = None
    error_kind: str | None = Field(
        None, description="the failure's kind in the exit-code table (connection, data, ...)"
    )
    error_hint: str | None = Field(None, description="what to do about the failure")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def rows_per_second(self) -> float:
        return round(self.rows_written / self.seconds, 1) if self.seconds > 0 else 0.0


class TableResult(BaseModel):
    table: str
    rows_read: int = Field(0, description="rows read from the source, rejects included")
    rows_rejected: int = Field(0, description="rows no sink can take (key and reason kept)")
    read_from: JsonKey | None = Field(None, description="the lowest checkpoint of the sinks")
    seconds: float = 0.0
    sinks: list[SinkTableResult] = Field(default_factory=list)


class ChangeResult(BaseModel):
    """One sink's part of the log phase of a change-capture sync."""

    sink: str
    status: SinkStatus = "ok"
    position_before: str | None = Field(None, description="lowest log position before the run")
    position_after: str | None = Field(None, description="lowest log position after the run")
    transactions: int = Field(0, description="whole source transactions applied")
    changes: int = Field(0, description="row changes read from the log for this sink")
    upserts: int = Field(0, description="rows inserted or replaced, after folding")
    deletes: int = 0
    rejects: int = 0
    committed_at: dt.datetime | None = Field(
        None, description="source commit time of the last transaction applied"
    )
    seconds: float = 0.0
    error: str | None = None
    error_kind: str | None = None
    error_hint: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def changes_per_second(self) -> float:
        return round(self.changes / self.seconds, 1) if self.seconds > 0 else 0.0


class SinkFailure(BaseModel):
    sink: str
    table: str
    error: str
    kind: str = "sink_write"
    hint: str | None = None

    def line(self) -> str:
        return f"sink {self.sink} failed on table {self.table}: {self.error}"


class SyncResult(BaseModel):
    source: str
    sinks: list[str]
    dry_run: bool = False
    full_refresh: bool = False
    batch_size: int = Field(description="the run's rows per batch (CHARIOT_RUN__BATCH_SIZE)")
    sink_batch_sizes: dict[str, int] = Field(
        default_factory=dict, description="rows per transaction each sink writes in a keyset sync"
    )
    mode: str = Field("keyset", description="keyset or cdc: how this run found changes")
    mode_reason: str | None = Field(None, description="why auto mode chose keyset")
    recopied: list[str] = Field(
        default_factory=list, description="sink:table pairs re-copied to start change capture"
    )
    follow: bool = False
    tables: list[TableResult] = Field(default_factory=list)
    changes: list[ChangeResult] = Field(default_factory=list)
    seconds: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failures(self) -> list[SinkFailure]:
        """The first failure of each failed sink (later tables are skipped for it)."""
        return [
            SinkFailure(
                sink=part.sink,
                table=part.table,
                error=part.error or "failed",
                kind=part.error_kind or "sink_write",
                hint=part.error_hint,
            )
            for table in self.tables
            for part in table.sinks
            if part.status == "failed"
        ] + [
            SinkFailure(
                sink=part.sink,
                table="(change log)",
                error=part.error or "failed",
                kind=part.error_kind or "sink_write",
                hint=part.error_hint,
            )
            for part in self.changes
            if part.status == "failed"
        ]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failure_kind(self) -> str | None:
        """What went wrong, as one kind of the exit-code table: the failures' common kind
        (every sink unreachable: "connection"), else "sink_write"; None when none failed."""
        kinds = {failure.kind for failure in self.failures}
        if not kinds:
            return None
        return kinds.pop() if len(kinds) == 1 else "sink_write"

    def finished_sinks(self) -> list[str]:
        failed = {failure.sink for failure in self.failures}
        return [name for name in self.sinks if name not in failed]

    def hint(self) -> str:
        """What to do about the failures: their own hints, else the general way out."""
        specific = [f.hint for f in self.failures if f.hint]
        if specific:
            return "; ".join(dict.fromkeys(specific))
        finished = self.finished_sinks()
        others = f"{', '.join(finished)} finished; " if finished else ""
        return (
            f"{others}fix the cause and re-run `chariot sync`: each sink resumes from its "
            "checkpoint"
        )

    def raise_for_failures(self) -> None:
        """A ``SinkWriteError`` with one line per failed sink, if any failed."""
        if self.failures:
            raise SinkWriteError(
                "; ".join(failure.line() for failure in self.failures), hint=self.hint()
            )
