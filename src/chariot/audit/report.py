"""What an audit returns: per table and sink, what was compared and what differs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from chariot.keys import JsonKey

DifferenceKind = Literal["missing", "extra", "differing"]


class RowDifference(BaseModel):
    kind: DifferenceKind
    key: JsonKey = Field(description="the source key, in key order")
    source: dict[str, Any] | None = Field(None, description="the row as the sink should hold it")
    sink: dict[str, Any] | None = Field(None, description="the row as the sink holds it")
    changed: list[str] = Field(default_factory=list, description="fields that differ")


class TableAudit(BaseModel):
    """One table in one sink, compared with the source."""

    table: str
    sink: str
    source_rows: int = Field(
        description="rows in the source a sync loads (rejected rows left out), in the compared "
        "segments"
    )
    sink_rows: int = Field(description="rows in the sink, in the compared segments")
    rows_compared: int = Field(description="source rows whose segment was compared")
    missing: int = Field(0, description="source rows the sink lacks (rejected rows excluded)")
    extra: int = Field(0, description="sink rows the source does not have")
    differing: int = Field(0, description="rows in both whose values differ")
    rejected_known: int = Field(
        0,
        description="source rows a sync rejects (the reader's rules, or recorded as rejected "
        "by this sink): left out of the comparison, expected absent, not differences",
    )
    segments: int = Field(description="segments the key space was split into")
    segments_compared: int
    segments_differing: int
    sampled: bool = Field(False, description="only a random subset of segments was compared")
    seconds: float
    examples: list[RowDifference] = Field(default_factory=list)
    in_flight: int = Field(
        0,
        description="rows that differ only because the sink has not applied the source's "
        "latest changes yet (keys changed after its log position): lag, not differences",
    )
    in_flight_examples: list[RowDifference] = Field(
        default_factory=list, description="the first keys in flight, per kind"
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def clean(self) -> bool:
        return self.missing == 0 and self.extra == 0 and self.differing == 0


class SummariesAudit(BaseModel):
    """The aggregation's summaries against an independent recomputation."""

    status: Literal["ok", "differences", "no summaries yet", "skipped"]
    note: str | None = None
    check: dict[str, Any] | None = Field(None, description="chariot.aggregate.verify.SummaryCheck")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def clean(self) -> bool:
        return self.status != "differences"


class OrphanNote(BaseModel):
    """Source rows whose referenced row is absent from the source (a rating of a movie not
    in ``movies``). The sinks keep them on purpose: a note, not a difference."""

    table: str
    references: str = Field(description="the referenced table")
    columns: list[str] = Field(description="this table's columns holding the reference")
    count: int = Field(description="rows whose referenced row is absent")
    keys: list[JsonKey] = Field(
        default_factory=list, description="the first keys of such rows (--examples), in key order"
    )


class RepairAction(BaseModel):
    table: str
    sink: str
    upserted: int = 0
    deleted: int = 0
    note: str | None = None


class RepairReport(BaseModel):
    actions: list[RepairAction]
    after: list[TableAudit] = Field(description="the audit run again after the repair")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def clean(self) -> bool:
        return all(result.clean for result in self.after)


class AuditReport(BaseModel):
    started_at: datetime
    seconds: float
    mode: Literal["full", "sample"]
    sample_fraction: float | None = None
    tables: list[str]
    sinks: list[str]
    results: list[TableAudit]
    summaries: SummariesAudit
    repair: RepairReport | None = None
    audit_id: int | None = Field(None, description="row in _chariot_audits; None if not stored")
    orphans: list[OrphanNote] = Field(
        default_factory=list, description="notes, not differences: rows referencing absent rows"
    )
    notes: list[str] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def differences(self) -> int:
        """Differences left at the end (after the repair, when one ran)."""
        final = self.repair.after if self.repair is not None else self.results
        return sum(r.missing + r.extra + r.differing for r in final)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def in_flight(self) -> int:
        """Rows still in flight (the sinks are behind the log) at the end: not differences."""
        final = self.repair.after if self.repair is not None else self.results
        return sum(r.in_flight for r in final)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def clean(self) -> bool:
        return self.differences == 0 and self.summaries.clean


class LastAudit(BaseModel):
    """The stored summary of the latest audit, for ``chariot status``."""

    audit_id: int
    started_at: datetime
    seconds: float
    mode: str
    clean: bool
    differences: int
    repaired: bool
    summaries: str
    per_table: dict[str, dict[str, int]] = Field(
        default_factory=dict, description='"table/sink" -> missing, extra, differing, rows_compared'
    )
