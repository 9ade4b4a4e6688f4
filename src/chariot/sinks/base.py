"""The contract every sink implements (built-in ones and plugins alike)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from chariot.batch import Batch, Key, Reject, WriteResult
from chariot.cdc.changes import ChangeBatch
from chariot.cdc.position import LogPosition
from chariot.config import Settings
from chariot.lease import LeaseOwner
from chariot.streams import Stream


class Sink(ABC):
    """Writes batches of one stream at a time, idempotently, with its checkpoint.

    One instance is used by one writer thread. ``write`` must store ``batch.last_key`` as
    the stream's high-water mark in the same transaction as the rows, so that a crash at
    any instant leaves data and checkpoint in step; replaying a batch must be harmless.
    """

    name: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Who writes (the command sets the purpose), and how long a busy lease is waited for.
        self.lease_owner = LeaseOwner()
        self.lease_wait_seconds = settings.run.lease_wait_seconds

    def acquire(self, stream: Stream) -> None:  # noqa: B027 - optional hook
        """Take this sink's writer lease for ``stream`` before the first write (``prepare``
        and the repair methods call it too). Raises ``Busy`` when another command holds it;
        a sink that two commands cannot corrupt by writing at once may keep this default."""

    def acquire_all(self, streams: Sequence[Stream]) -> None:
        """``acquire`` for every stream, before a run writes anything; a sink may take them
        together (fewer round trips), all or none."""
        for stream in streams:
            self.acquire(stream)

    @abstractmethod
    def prepare(self, stream: Stream, *, full_refresh: bool = False) -> None:
        """Create what the stream needs (tables, constraints). ``full_refresh`` empties the
        stream's data and checkpoint first."""

    def table_complete(self, stream: Stream) -> None:  # noqa: B027 - optional hook
        """Called when the sink holds the whole table (a first copy or full refresh ended)."""

    @abstractmethod
    def checkpoint(self, stream: Stream) -> Key | None:
        """The stored high-water mark for the stream, or None when nothing was written yet."""

    @abstractmethod
    def write(self, batch: Batch) -> WriteResult:
        """Upsert the batch and move the checkpoint to ``batch.last_key`` atomically.

        Rows this sink cannot take (and ``batch.rejects``) are recorded with their key and
        reason, in the same transaction, and returned in ``WriteResult.rejected``.
        """

    def stage(self, batch: Batch) -> None:  # noqa: B027 - optional hook
        """A hint that ``batch`` is the next ``write``: a sink may start the work that
        touches no database (converting its rows) while the current batch is written."""

    # -- optional abilities, used by status and audit; plugins may leave the defaults --

    def stored_checkpoints(self) -> dict[str, Key]:
        """Every stream's stored high-water mark (for ``chariot status``)."""
        return {}

    def recorded_rejects(self, *, limit: int = 100) -> tuple[dict[str, int], list[Reject]]:
        """Rejected-row counts per table and the first ``limit`` rejects (for status)."""
        return {}, []

    def is_transient(self, error: BaseException) -> bool:
        """Whether ``write`` may succeed if called again with the same batch (connection
        reset, server restarting, deadlock). The conductor retries those, up to
        ``settings.run.max_attempts`` attempts with backoff; ``write`` must then reconnect
        by itself. The default knows the built-in drivers; plugins may override it."""
        return is_transient_error(error)

    def describe(self) -> str:
        """Where this sink writes, without secrets."""
        return self.name

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RepairableSink(Sink):
    """A sink that ``chariot audit --repair`` can fix without moving any checkpoint."""

    @abstractmethod
    def upsert_rows(self, stream: Stream, rows: list[tuple[Any, ...]]) -> int:
        """Write source rows (``stream.source_columns`` order) with the same transforms as
        ``write``, leaving the checkpoint alone. Returns rows written."""

    @abstractmethod
    def delete_keys(self, stream: Stream, keys: list[Key]) -> int:
        """Delete the rows with these source keys (and, in a graph, what they leave orphaned
        as documented by the sink). Returns rows deleted."""


class ChangeSink(RepairableSink):
    """A sink that applies change capture (``chariot.cdc``): the log position it has
    reached is stored per table, in the same transaction as the changes it covers."""

    # The most row changes one sink transaction may hold (None: no limit). A source
    # transaction with more is applied in chunks (``LogPosition.within`` records how far).
    max_changes_per_transaction: int | None = None

    @abstractmethod
    def log_positions(self) -> dict[str, LogPosition]:
        """The stored log position of every table this sink syncs by change capture (a
        table synced only by keys, or never synced, is absent)."""

    @abstractmethod
    def start_log(self, stream: Stream, position: LogPosition) -> None:
        """Store ``position`` as the table's log position, committed now: a first copy (or
        full refresh) starts; the log is applied from ``position`` once the copy is done.
        The caller holds the writer lease."""

    @abstractmethod
    def forget_log(self, stream: Stream) -> None:
        """Drop the table's log position (the table goes back to key-based sync)."""

    def log_copied(self) -> set[str]:
        """The tables whose copy into this sink finished (``table_complete``) after their
        log position was stored, with no wipe of their rows since: the log carries every
        later row, so a sync skips their keyset pass (which would write the log's new rows
        twice). A sink that does not track it returns none: its keyset pass always runs."""
        return set()

    def prepare_changes(self, batch: ChangeBatch) -> None:
        """Do the part of ``apply`` that needs no transaction (converting values), storing
        it in ``batch.prepared``. Called on the applier's thread while the sink's batch
        before this one may still be committing on another; ``apply`` then runs after that
        one. Must not write, nor assume the batch before is in the sink. Default: nothing."""

    @abstractmethod
    def apply(self, batch: ChangeBatch) -> None:
        """Apply ``batch`` in ONE transaction: for each table (``batch.tables``), deletes in
        reverse table order, then upserts in table order (with the same transforms as
        ``write``), rejects recorded (and deleted from the sink), the recorded rejects of
        keys that now load cleared; and ``batch.position`` stored for every table named in
        ``batch.positioned``. Replaying a batch must be harmless."""

    @abstractmethod
    def keys_referencing(
        self, stream: Stream, columns: tuple[str, ...], values: list[Key]
    ) -> list[Key]:
        """Source keys of the sink's rows of ``stream`` whose source ``columns`` equal one of
        ``values`` (how foreign-key actions, which the log lacks, find the rows they hit)."""


# SQLSTATE classes worth retrying in PostgreSQL: 08 connection exception, 40 transaction
# rollback (serialization failure, deadlock), 57P01-03 server shutting down / restarting.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "40", "57P01", "57P02", "57P03")


def is_transient_error(error: BaseException) -> bool:
    """Transient errors of the built-in drivers, recognised without importing them."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    module = type(error).__module__
    if module.startswith("neo4j"):
        from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

        return isinstance(error, (ServiceUnavailable, SessionExpired, TransientError))
    if module.startswith("psycopg"):
        import psycopg

        sqlstate = getattr(error, "sqlstate", None) or ""
        return isinstance(error, psycopg.OperationalError) and (
            not sqlstate or sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES)
        )
    return False
