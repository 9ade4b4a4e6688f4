"""The writer lease in Neo4j: one ``:ChariotLease`` node per label or relationship type.

A table writes a set of labels and types (``movies`` and ``ratings`` both write ``:Movie``),
so two tables that share one are never written by two commands at once. A lease has an
owner, a token and an expiry in the server's clock; the holder renews it from a heartbeat
thread, and every write transaction checks it (``CHECK``) before it writes: a writer whose
lease expired or was taken over fails that transaction instead of writing on. A holder on
this host whose process is gone (kill -9) is taken over at once; any other waits for expiry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from chariot.errors import Busy, SinkWriteError
from chariot.lease import LeaseOwner, is_dead_local_process, keep_trying

if TYPE_CHECKING:
    from neo4j import Driver, ManagedTransaction

log = logging.getLogger(__name__)

CONSTRAINT = (
    "CREATE CONSTRAINT chariot_lease_resource IF NOT EXISTS "
    "FOR (l:ChariotLease) REQUIRE l.resource IS UNIQUE"
)

# The SET takes each lease node's write lock first, so two commands asking at once queue
# here, and the second reads what the first committed.
_LOCK_AND_READ = """
UNWIND $resources AS resource
MERGE (l:ChariotLease {resource: resource})
SET l.askedAt = timestamp()
RETURN l.resource AS resource, l.token AS token, l.owner AS owner, l.holder AS holder,
       l.expiresAt AS expiresAt, timestamp() AS now
"""

_TAKE = """
UNWIND $resources AS resource
MATCH (l:ChariotLease {resource: resource})
SET l.token = $token, l.owner = $owner, l.holder = $holder,
    l.expiresAt = timestamp() + $ttl_ms
"""

# Run first in every write transaction: the resources this writer no longer holds.
CHECK = """
UNWIND $resources AS resource
OPTIONAL MATCH (l:ChariotLease {resource: resource})
WITH resource, l
WHERE l IS NULL OR l.token IS NULL OR l.token <> $token OR l.expiresAt < timestamp()
RETURN collect(resource) AS lost, collect(l.owner) AS owners
"""

_RENEW = """
MATCH (l:ChariotLease) WHERE l.token = $token
SET l.expiresAt = timestamp() + $ttl_ms
RETURN count(l) AS renewed
"""

_RELEASE = """
MATCH (l:ChariotLease) WHERE l.token = $token
SET l.token = null, l.owner = null, l.holder = null, l.expiresAt = 0
"""


class GraphLease:
    """The resources one writer holds in one Neo4j database."""

    def __init__(
        self, driver: Driver, database: str, owner: LeaseOwner, *, ttl_seconds: float
    ) -> None:
        self.driver = driver
        self.database = database
        self.owner = owner
        self.ttl_ms = int(ttl_seconds * 1000)
        self.held: set[str] = set()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self, resources: Iterable[str], *, wait_seconds: float = 0.0) -> None:
        """Take every resource (or none); raises ``Busy`` naming the holder."""
        wanted = sorted(set(resources) - self.held)
        if not wanted:
            return
        blocker: list[str] = []

        def attempt() -> bool | None:
            held_by = self._try_take(wanted)
            if held_by is None:
                return True
            blocker[:] = [held_by]
            return None

        if keep_trying(attempt, wait_seconds=wait_seconds) is None:
            raise Busy(
                f"Neo4j labels {', '.join(wanted)} are held by {blocker[0]}",
                hint="wait for that command to finish (or pass --wait SECONDS); "
                "a killed holder's lease expires by itself",
            )
        self.held.update(wanted)
        self._start_heartbeat()

    def check(self, tx: ManagedTransaction, resources: Iterable[str]) -> None:
        """Inside a write transaction: fail it unless this writer still holds ``resources``."""
        record = tx.run(CHECK, resources=sorted(set(resources)), token=self.owner.token).single()
        if record is not None and record["lost"]:
            owners = [o for o in record["owners"] if o]
            by = f" (now held by {owners[0]})" if owners else ""
            raise SinkWriteError(
                f"lost the Neo4j writer lease on {', '.join(record['lost'])}{by}; "
                "nothing of this batch was written",
                hint="another command took over after this one stalled; re-run to resume",
            )

    def release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
            self._heartbeat = None
        if not self.held:
            return
        try:
            with self.driver.session(database=self.database) as session:
                session.run(_RELEASE, token=self.owner.token).consume()
        except Exception:  # the lease then expires by itself
            log.debug("releasing the Neo4j lease failed", exc_info=True)
        self.held.clear()

    # -- internals -------------------------------------------------------------------------

    def _try_take(self, resources: list[str]) -> str | None:
        """Take ``resources`` in one transaction; None when taken, else who holds them."""
        with (
            self.driver.session(database=self.database) as session,
            session.begin_transaction() as tx,
        ):
            for record in tx.run(_LOCK_AND_READ, resources=resources):
                if not _is_free(record.data(), self.owner.token):
                    tx.rollback()
                    return str(record["owner"] or "another chariot command")
            tx.run(
                _TAKE,
                resources=resources,
                token=self.owner.token,
                owner=self.owner.describe(),
                holder=self.owner.holder,
                ttl_ms=self.ttl_ms,
            ).consume()
            tx.commit()
        return None

    def _start_heartbeat(self) -> None:
        if self._heartbeat is not None:
            return
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._renew_until_stopped, name="chariot-neo4j-lease", daemon=True
        )
        self._heartbeat.start()

    def _renew_until_stopped(self) -> None:
        interval = max(self.ttl_ms / 3000, 0.5)
        while not self._stop.wait(interval):
            try:
                with self.driver.session(database=self.database) as session:
                    session.run(_RENEW, token=self.owner.token, ttl_ms=self.ttl_ms).consume()
            except Exception:  # a lost server: the write transactions' check decides
                log.debug("renewing the Neo4j lease failed", exc_info=True)


def _is_free(lease: dict[str, Any], token: str) -> bool:
    if lease["token"] is None or lease["token"] == token:
        return True
    if (lease["expiresAt"] or 0) < lease["now"]:
        return True
    return is_dead_local_process(lease["holder"])
