"""Job control: runs and their partitions in PostgreSQL, claimed under a lease.

A run has partitions of every declared aggregation (``kind`` = its name). An integer group
key is cut into half-open key ranges ``(key_after, key_through]`` (NULL = unbounded) sized by
ROW COUNT (~``partition_rows`` rows each; estimated from a sample on a large table:
planning.py), so every group's rows are in one partition
(medians need them all); a group with more rows than ``partition_rows`` is alone. The
ranges tile the whole key space, so a row can never fall between two partitions. Any other
group key is one unbounded partition (see declared.py).

A worker claims the next partition (``FOR UPDATE SKIP LOCKED``; pending ones, and running
ones whose lease expired), gets a fresh ``lease_token``, and commits its results together
with the ``done`` mark only while that token is still the partition's: a worker whose lease
was taken over cannot commit, so no partition is ever counted twice.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chariot.aggregate import planning, schema
from chariot.aggregate.declared import Declared
from chariot.lease import is_dead_local_process


@dataclass(frozen=True)
class Claim:
    run_id: int
    partition_id: int
    kind: str
    key_after: int | None
    key_through: int | None
    lease_token: str
    attempt: int


@dataclass(frozen=True)
class OpenRun:
    run_id: int
    resumed: bool  # True: an unfinished run was continued (or joined)
    partitions_total: int
    partitions_done_before: int
    partitions_reset: int  # failed partitions given a fresh set of attempts
    recomputed_because: str | None = None  # why an open run was dropped for a new one


class JobControl:
    """The SQL of runs and partitions over one psycopg connection (the caller commits)."""

    def __init__(
        self,
        connection: Any,
        schema_name: str,
        declared: Sequence[Declared] = (),
        *,
        sample_above: int | None = None,
    ) -> None:
        self.connection = connection
        # plan partitions from a sample above this many rows (default: planning's)
        self.sample_above = planning.SAMPLE_ABOVE_ROWS if sample_above is None else sample_above
        self.schema = schema_name
        self.declared = tuple(declared)  # what create_run plans and abandon cleans up
        self.runs = schema.qualified(schema_name, schema.RUNS)
        self.partitions = schema.qualified(schema_name, schema.PARTITIONS)

    def execute(self, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return self.connection.execute(query, params)

    # -- runs --------------------------------------------------------------------------

    def lock_runs(self) -> None:
        """Serialise 'find or create the open run' between concurrent commands."""
        self.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"chariot-agg-runs:{self.schema}",)
        )

    def open_run_id(self) -> int | None:
        row = self.execute(
            f"SELECT max(run_id) FROM {self.runs} WHERE status = 'running'"
        ).fetchone()
        return None if row[0] is None else int(row[0])

    def abandon_open_runs(self) -> list[int]:
        rows = self.execute(
            f"UPDATE {self.runs} SET status = 'abandoned', updated_at = now() "
            "WHERE status = 'running' RETURNING run_id"
        ).fetchall()
        abandoned = [int(row[0]) for row in rows]
        existing = schema.existing_tables(self.connection, self.schema)
        for declared in self.declared:
            if declared.staging in existing:
                self.execute(
                    f"DELETE FROM {schema.qualified(self.schema, declared.staging)} "
                    "WHERE run_id = ANY(%s)",
                    (abandoned,),
                )
        return abandoned

    def input_state(self, run_id: int) -> Any:
        """What the run's inputs looked like when it started (None: a 0.1.0 run)."""
        row = self.execute(
            f"SELECT input_state FROM {self.runs} WHERE run_id = %s", (run_id,)
        ).fetchone()
        return None if row is None else row[0]

    def create_run(self, partition_rows: int, input_state: dict[str, Any] | None = None) -> int:
        """A new run with the partitions of every declared aggregation."""
        from psycopg.types.json import Jsonb

        run_id = int(
            self.execute(
                f"INSERT INTO {self.runs} (partition_rows, input_state) VALUES (%s, %s) "
                "RETURNING run_id",
                (partition_rows, Jsonb(input_state or {})),
            ).fetchone()[0]
        )
        for declared in self.declared:
            self._plan(run_id, declared, partition_rows)
        # the run's planned rows: those of its largest aggregation of one table's own rows
        plain = [d.name for d in self.declared if d.join_table is None and not d.exploded]
        self.execute(
            f"UPDATE {self.runs} SET ratings_planned = (SELECT coalesce(max(n), 0) FROM ("
            f"SELECT sum(rows_planned) AS n FROM {self.partitions} WHERE run_id = %s "
            "AND (kind = ANY(%s) OR cardinality(%s::text[]) = 0) GROUP BY kind) AS planned) "
            "WHERE run_id = %s",
            (run_id, plain, plain, run_id),
        )
        return run_id

    def _plan(self, run_id: int, declared: Declared, partition_rows: int) -> None:
        """Cut the key space at (estimated) cumulative row counts (planning.py): from every
        key's count on a small table, from a page sample of a large one; one partition for a
        key that is not cut in ranges."""
        kind, key = declared.name, declared.group_expression
        estimated = self.estimated_rows(declared.table)
        percent = planning.sample_percent(estimated, self.sample_above)
        if not declared.ranged:
            # rows_planned only orders the claims: a large table's estimate will do (counting
            # a joined, exploded input costs about as much as aggregating it)
            rows, source = (
                "count(*)",
                f"{declared.from_clause(self.schema)} WHERE {key} IS NOT NULL",
            )
            if percent < 100 and estimated is not None:
                rows, source = str(round(estimated)), ""
            self.execute(
                f"INSERT INTO {self.partitions} (run_id, partition_id, kind, rows_planned) "
                f"SELECT %s, (SELECT coalesce(max(partition_id) + 1, 0) FROM {self.partitions} "
                f"WHERE run_id = %s), %s, {rows} {source}",
                (run_id, run_id, kind),
            )
            return
        sample = None if percent >= 100 else percent
        counted = self.execute(
            f"SELECT {key}, count(*) {declared.from_clause(self.schema, sample=sample)} "
            f"WHERE {key} IS NOT NULL GROUP BY 1 ORDER BY 1"
        ).fetchall()
        ranges = planning.cut_ranges(
            [int(row[0]) for row in counted],
            [int(row[1]) for row in counted],
            partition_rows,
            scale=100.0 / percent,
        )
        self.execute(
            f"INSERT INTO {self.partitions} "
            "(run_id, partition_id, kind, key_after, key_through, rows_planned) "
            f"SELECT %(run)s, (SELECT coalesce(max(partition_id) + 1, 0) FROM {self.partitions} "
            "WHERE run_id = %(run)s) + u.n - 1, %(kind)s, u.key_after, u.key_through, u.rows "
            "FROM unnest(%(after)s::bigint[], %(through)s::bigint[], %(rows)s::bigint[]) "
            "WITH ORDINALITY AS u(key_after, key_through, rows, n)",
            {
                "run": run_id,
                "kind": kind,
                "after": [r.key_after for r in ranges],
                "through": [r.key_through for r in ranges],
                "rows": [r.rows for r in ranges],
            },
        )

    def estimated_rows(self, table_name: str) -> float | None:
        """The planner's estimate of a table's rows (its last ANALYZE's rows per page times
        its pages now); None when it was never analysed."""
        row = self.execute(
            "SELECT c.reltuples, c.relpages, "
            "pg_relation_size(c.oid) / current_setting('block_size')::bigint "
            "FROM pg_class c WHERE c.oid = to_regclass(%s)",
            (schema.qualified(self.schema, table_name),),
        ).fetchone()
        if row is None or row[0] < 0 or not row[1]:
            return None
        return float(row[0]) / float(row[1]) * float(row[2])

    def reset_failed(self, run_id: int) -> int:
        """A new invocation gives partitions that failed for good a fresh set of attempts."""
        return self.execute(
            f"UPDATE {self.partitions} SET status = 'pending', attempts = 0, worker_id = NULL, "
            "lease_token = NULL, lease_expires_at = NULL WHERE run_id = %s AND status = 'failed'",
            (run_id,),
        ).rowcount

    def counts(self, run_id: int) -> dict[str, int]:
        """Partitions by state, plus ``claimable`` (pending or running with an expired lease)."""
        row = self.execute(
            f"""SELECT count(*) FILTER (WHERE status = 'pending'),
                       count(*) FILTER (WHERE status = 'running'),
                       count(*) FILTER (WHERE status = 'done'),
                       count(*) FILTER (WHERE status = 'failed'),
                       count(*) FILTER (WHERE status = 'pending'
                                        OR (status = 'running' AND lease_expires_at < now())),
                       count(*)
                FROM {self.partitions} WHERE run_id = %s""",
            (run_id,),
        ).fetchone()
        names = ("pending", "running", "done", "failed", "claimable", "total")
        return {name: int(value) for name, value in zip(names, row, strict=True)}

    def failures(
        self, run_id: int, limit: int = 3
    ) -> list[tuple[int, str, int | None, int | None, str]]:
        return self.execute(
            f"SELECT partition_id, kind, key_after, key_through, coalesce(last_error, '') "
            f"FROM {self.partitions} WHERE run_id = %s AND status = 'failed' "
            "ORDER BY partition_id LIMIT %s",
            (run_id, limit),
        ).fetchall()

    # -- partitions --------------------------------------------------------------------

    def claim_next(
        self, run_id: int, worker: str, lease_seconds: int, max_attempts: int
    ) -> Claim | None:
        """Take the biggest claimable partition of a still-running run (caller commits)."""
        self.execute(
            f"""UPDATE {self.partitions} SET status = 'failed', lease_token = NULL,
                    last_error = 'lease expired during attempt ' || attempts
                        || ' (worker ' || coalesce(worker_id, '?') || ' died or hung)'
                WHERE run_id = %s AND status = 'running' AND lease_expires_at < now()
                  AND attempts >= %s""",
            (run_id, max_attempts),
        )
        row = self.execute(
            f"""UPDATE {self.partitions} AS p
                SET status = 'running', attempts = p.attempts + 1, worker_id = %(worker)s,
                    lease_token = gen_random_uuid(),
                    lease_expires_at = clock_timestamp() + make_interval(secs => %(lease)s::float8),
                    started_at = clock_timestamp(), finished_at = NULL
                FROM (
                    SELECT q.run_id, q.partition_id FROM {self.partitions} q
                    JOIN {self.runs} r ON r.run_id = q.run_id AND r.status = 'running'
                    WHERE q.run_id = %(run)s AND (q.status = 'pending'
                          OR (q.status = 'running' AND q.lease_expires_at < now()))
                    ORDER BY q.rows_planned DESC, q.partition_id
                    LIMIT 1 FOR UPDATE OF q SKIP LOCKED
                ) AS next
                WHERE p.run_id = next.run_id AND p.partition_id = next.partition_id
                RETURNING p.partition_id, p.kind, p.key_after, p.key_through,
                          p.lease_token::text, p.attempts""",
            {"run": run_id, "worker": worker, "lease": lease_seconds},
        ).fetchone()
        if row is None:
            return None
        return Claim(run_id, int(row[0]), str(row[1]), row[2], row[3], str(row[4]), int(row[5]))

    def mark_done(self, claim: Claim, *, seconds: float, rows_in: int, rows_out: int) -> bool:
        """Mark done iff the lease is still ours and the run still open (row-locks both)."""
        open_run = self.execute(
            f"SELECT 1 FROM {self.runs} WHERE run_id = %s AND status = 'running' FOR SHARE",
            (claim.run_id,),
        ).fetchone()
        if open_run is None:
            return False
        row = self.execute(
            f"""UPDATE {self.partitions} SET status = 'done', finished_at = clock_timestamp(),
                    seconds = %s, rows_in = %s, rows_out = %s, lease_expires_at = NULL,
                    last_error = NULL
                WHERE run_id = %s AND partition_id = %s AND status = 'running'
                  AND lease_token = %s::uuid
                RETURNING 1""",
            (seconds, rows_in, rows_out, claim.run_id, claim.partition_id, claim.lease_token),
        ).fetchone()
        return row is not None

    def mark_failed(self, claim: Claim, error: str, max_attempts: int) -> None:
        """Back to pending for another attempt, or failed for good after ``max_attempts``."""
        self.execute(
            f"""UPDATE {self.partitions}
                SET status = CASE WHEN attempts >= %s THEN 'failed' ELSE 'pending' END,
                    last_error = %s, lease_token = NULL, lease_expires_at = NULL,
                    finished_at = clock_timestamp()
                WHERE run_id = %s AND partition_id = %s AND lease_token = %s::uuid""",
            (max_attempts, error[:2000], claim.run_id, claim.partition_id, claim.lease_token),
        )

    def renew(self, claim: Claim, lease_seconds: int) -> bool:
        row = self.execute(
            f"""UPDATE {self.partitions}
                SET lease_expires_at = clock_timestamp() + make_interval(secs => %s::float8)
                WHERE run_id = %s AND partition_id = %s AND status = 'running'
                  AND lease_token = %s::uuid RETURNING 1""",
            (lease_seconds, claim.run_id, claim.partition_id, claim.lease_token),
        ).fetchone()
        return row is not None

    def release_dead_local_leases(self, run_id: int) -> int:
        """Expire the leases of workers on this host whose process no longer exists.

        Only shortens the wait for a lease to expire; safety never depends on it, because a
        holder that is somehow still alive can no longer commit once its token is replaced.
        """
        host = socket.gethostname()
        rows = self.execute(
            f"SELECT partition_id, worker_id, lease_token::text FROM {self.partitions} "
            "WHERE run_id = %s AND status = 'running' AND lease_expires_at >= now()",
            (run_id,),
        ).fetchall()
        released = 0
        for partition_id, holder, token in rows:
            if is_dead_local_process(holder, host):
                released += self.execute(
                    f"UPDATE {self.partitions} SET lease_expires_at = now() - interval '1 second' "
                    "WHERE run_id = %s AND partition_id = %s AND lease_token = %s::uuid",
                    (run_id, partition_id, token),
                ).rowcount
        return released
