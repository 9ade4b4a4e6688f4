"""What a sink applies from the binary log: the net effect of whole source transactions.

The change writer (``chariot.sync.capture``) reads whole transactions, keeps for each sink
only the changes that sink has not applied yet (its stored log position per table), folds
them into one ``TableChanges`` per table (the last change of a key wins: an update that
changes a key is a delete of the old key plus an upsert of the new one), validates the new
rows with the source reader's reject rules, adds what the source's foreign-key actions did
(they are not in the log), and hands the result to ``ChangeSink.apply`` as one
``ChangeBatch``. The sink applies it in ONE transaction together with ``position``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from chariot.batch import Key, Reject
from chariot.cdc.position import LogPosition
from chariot.keys import key_getter
from chariot.streams import Stream


@dataclass
class TableChanges:
    """The net effect of a run of changes on one table. ``deletes``, ``upserts`` and
    ``rejects`` name disjoint keys.

    ``deletes``: source keys whose rows are gone (deleted, or moved to another key).
    ``upserts``: whole source rows (``stream.source_columns`` order, VALUE CONTRACT values)
    to insert or replace, each passing the reject rules.
    ``rejects``: rows whose new version no sink may store: the sink deletes the key's row
    and records the reject (key, reason), as a first copy would have rejected it.
    ``moved``: (old key, new key) of each update that changed a key (the old key is in
    ``deletes``; the new one in ``upserts`` or ``rejects``), for ON UPDATE foreign-key rules.
    ``replaced``: keys deleted and inserted again within the run (so in ``upserts`` or
    ``rejects``, not ``deletes``): the delete's ON DELETE foreign-key rules still acted.
    ``updated``: keys of ``upserts`` whose first change in the run updated the row in
    place (same key), so the source held the row before: a hint a sink may use to look
    the row up before it tries to insert it (it must still insert one it does not find).
    """

    stream: Stream
    deletes: list[Key] = field(default_factory=list)
    upserts: list[tuple[Any, ...]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    moved: list[tuple[Key, Key]] = field(default_factory=list)
    replaced: list[Key] = field(default_factory=list)
    updated: set[Key] = field(default_factory=set)

    @property
    def changed_keys(self) -> list[Key]:
        """Every key this applies to (deleted, upserted or rejected)."""
        key_of = key_getter(self.stream.key_positions)
        return [
            *self.deletes,
            *map(key_of, self.upserts),
            *(reject.key for reject in self.rejects),
        ]

    def __bool__(self) -> bool:
        return bool(self.deletes or self.upserts or self.rejects)


@dataclass
class ChangeBatch:
    """One sink transaction's worth of changes: one or more whole source transactions (or,
    for a source transaction too large for the sink, one chunk of it: ``position.within``).

    ``tables``: in dependency order (a referenced table before the tables pointing at it);
    a sink deletes in the reverse order and upserts in this one.
    ``position``: where reading resumes after this batch; the sink stores it, in the same
    transaction, for every table named in ``positioned`` (the tables it syncs by change
    capture whose stored position is before it; a table may have no change in the batch).
    """

    tables: list[TableChanges]
    position: LogPosition
    positioned: tuple[str, ...]
    transactions: int = 0  # source transactions covered (whole ones)
    changes: int = 0  # row changes read (before folding)
    committed_at: dt.datetime | None = None  # the last covered transaction's commit (UTC)
    # A watermark snapshot's progress (``chariot.cdc.watermark``): table -> the last key of
    # the chunk this batch carries. The sink stores it as the table's high-water mark (where
    # ``write`` stores ``batch.last_key``) in the same transaction, so a restart resumes
    # the snapshot right after it.
    checkpoints: dict[str, Key] = field(default_factory=dict)
    # What the sink's ``prepare_changes`` computed for ``apply`` (conversions): made while the batch
    # before commits.
    prepared: Any = field(default=None, repr=False, compare=False)
