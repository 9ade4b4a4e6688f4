"""Job control against a real PostgreSQL: planning, claims, leases, binary transfer."""

from __future__ import annotations

import numpy as np
import pytest

from chariot.aggregate import pgcopy, schema
from chariot.aggregate.partitions import JobControl
from chariot.config import Settings
from chariot.connections import postgres_connection
from chariot.seed.synthetic import load_ratings_into_postgres
from tests.test_aggregate_support import (
    create_input_tables,
    movielens_declared,
    query,
    wait_for,
)

pytestmark = pytest.mark.integration


def _jobs(settings: Settings) -> tuple[object, JobControl]:
    connection = postgres_connection(settings.postgres)
    handle = connection.__enter__()
    schema.ensure_tables(handle, settings.postgres.schema_name)
    handle.commit()
    return connection, JobControl(handle, settings.postgres.schema_name, movielens_declared())


def test_partitions_are_balanced_by_row_count_and_tile_the_key_space(
    sql_settings: Settings,
) -> None:
    load_ratings_into_postgres(sql_settings.postgres, 60_000, seed=3)
    context, jobs = _jobs(sql_settings)
    try:
        run_id = jobs.create_run(5_000)
        jobs.connection.commit()
        for kind, key in (("movie_stats", "movie_id"), ("user_stats", "user_id")):
            parts = query(
                sql_settings.postgres,
                (
                    "SELECT key_after, key_through, rows_planned "
                    "FROM {schema}._chariot_agg_partitions "
                    "WHERE run_id = %s AND kind = %s ORDER BY partition_id"
                ),
                (run_id, kind),
            )
            assert parts[0][0] is None and parts[-1][1] is None  # unbounded at both ends
            for before, after in zip(parts, parts[1:], strict=False):
                assert after[0] == before[1]  # no gap, no overlap
            assert sum(p[2] for p in parts) == 60_000
            # Balanced by rows: every cut is within one key's ratings of the target size.
            largest_key = query(
                sql_settings.postgres,
                f"SELECT max(n) FROM (SELECT count(*) n FROM {{schema}}.ratings GROUP BY {key}) c",
            )[0][0]
            assert all(abs(p[2] - 5_000) <= largest_key for p in parts[:-1]), parts
            actual = query(
                sql_settings.postgres,
                (
                    f"SELECT count(*) FROM {{schema}}.ratings "
                    f"WHERE ({key} > %s OR %s::int IS NULL) AND ({key} <= %s OR %s::int IS NULL)"
                ),
                (parts[1][0], parts[1][0], parts[1][1], parts[1][1]),
            )
            assert actual[0][0] == parts[1][2]
    finally:
        context.__exit__(None, None, None)


def test_empty_ratings_still_get_one_unbounded_partition_per_kind(sql_settings: Settings) -> None:
    create_input_tables(sql_settings.postgres)
    context, jobs = _jobs(sql_settings)
    try:
        run_id = jobs.create_run(1000)
        jobs.connection.commit()
        rows = query(
            sql_settings.postgres,
            "SELECT kind, key_after, key_through FROM {schema}._chariot_agg_partitions "
            "WHERE run_id = %s ORDER BY kind",
            (run_id,),
        )
        assert rows == [
            ("genre_stats", None, None),
            ("movie_stats", None, None),
            ("user_stats", None, None),
        ]
    finally:
        context.__exit__(None, None, None)


def test_a_worker_whose_lease_was_taken_over_cannot_commit(sql_settings: Settings) -> None:
    load_ratings_into_postgres(sql_settings.postgres, 2_000, seed=1)
    first_context, first = _jobs(sql_settings)
    second_context, second = _jobs(sql_settings)
    try:
        run_id = first.create_run(100_000)
        first.connection.commit()
        claim = first.claim_next(run_id, "host:1", lease_seconds=60, max_attempts=3)
        first.connection.commit()
        assert claim is not None
        # Another worker cannot take it while the lease holds...
        others = []  # it claims every other partition (one per aggregation), then none
        while other := second.claim_next(run_id, "host:2", lease_seconds=60, max_attempts=3):
            second.connection.commit()
            others.append(other.partition_id)
        second.connection.commit()
        assert others and claim.partition_id not in others
        # ...but once it expires, it can; the original holder's commit is then refused.
        query(
            sql_settings.postgres,
            "UPDATE {schema}._chariot_agg_partitions SET lease_expires_at = now() - "
            "interval '1 second' WHERE run_id = %s AND partition_id = %s",
            (run_id, claim.partition_id),
        )
        stolen = second.claim_next(run_id, "host:2", lease_seconds=60, max_attempts=3)
        second.connection.commit()
        assert stolen is not None and stolen.partition_id == claim.partition_id
        assert stolen.attempt == 2 and stolen.lease_token != claim.lease_token
        assert not first.mark_done(claim, seconds=0.1, rows_in=1, rows_out=1)
        first.connection.rollback()
        assert not first.renew(claim, 60)
        first.connection.rollback()
        assert second.mark_done(stolen, seconds=0.1, rows_in=1, rows_out=1)
        second.connection.commit()
    finally:
        first_context.__exit__(None, None, None)
        second_context.__exit__(None, None, None)


def test_expired_lease_after_the_last_attempt_fails_the_partition(sql_settings: Settings) -> None:
    load_ratings_into_postgres(sql_settings.postgres, 500, seed=1)
    context, jobs = _jobs(sql_settings)
    try:
        run_id = jobs.create_run(100_000)
        claim = jobs.claim_next(run_id, "host:1", lease_seconds=60, max_attempts=1)
        jobs.connection.commit()
        assert claim is not None
        query(
            sql_settings.postgres,
            "UPDATE {schema}._chariot_agg_partitions SET lease_expires_at = now() - "
            "interval '1 second' WHERE run_id = %s",
            (run_id,),
        )
        while jobs.claim_next(run_id, "host:2", lease_seconds=60, max_attempts=1) is not None:
            jobs.connection.commit()
        jobs.connection.commit()
        states = query(
            sql_settings.postgres,
            "SELECT status, last_error FROM {schema}._chariot_agg_partitions "
            "WHERE run_id = %s AND partition_id = %s",
            (run_id, claim.partition_id),
        )
        assert states[0][0] == "failed" and "lease expired" in states[0][1]
    finally:
        context.__exit__(None, None, None)


def test_binary_transfer_round_trips_through_postgres(sql_settings: Settings) -> None:
    rng = np.random.default_rng(5)
    columns = [
        rng.integers(-(2**31), 2**31 - 1, 1000, dtype=np.int64).astype(np.int32),
        rng.integers(-(2**15), 2**15 - 1, 1000).astype(np.int16),
        rng.integers(-(2**62), 2**62, 1000, dtype=np.int64),
        rng.normal(size=1000),
    ]
    types = ["int4", "int2", "int8", "float8"]
    table = f'"{sql_settings.postgres.schema_name}".t'
    with postgres_connection(sql_settings.postgres) as connection:
        connection.execute(f'CREATE SCHEMA "{sql_settings.postgres.schema_name}"')
        connection.execute(f"CREATE TABLE {table} (n serial, a int4, b int2, c int8, d float8)")
        with connection.cursor() as cursor:
            pgcopy.copy_in(cursor, table, ["a", "b", "c", "d"], columns, types)
        back = pgcopy.fetch_columns(
            connection, ["a", "b", "c", "d"], f"(SELECT * FROM {table} ORDER BY n) s", (), types
        )
        for sent, received in zip(columns, back, strict=True):
            assert np.array_equal(sent, received)
        connection.execute(f"INSERT INTO {table} (a, b, c, d) VALUES (1, NULL, 1, 1)")
        with pytest.raises(pgcopy.CopyFormatError, match="NULL"):
            pgcopy.fetch_columns(connection, ["a", "b", "c", "d"], table, (), types)


def test_the_lease_is_renewed_while_a_partition_is_worked_on(sql_settings: Settings) -> None:
    from chariot.aggregate.worker import _LeaseKeeper

    load_ratings_into_postgres(sql_settings.postgres, 500, seed=1)
    settings = sql_settings.model_copy(
        update={"run": sql_settings.run.model_copy(update={"lease_seconds": 5})}
    )
    context, jobs = _jobs(settings)
    try:
        run_id = jobs.create_run(100_000)
        claim = jobs.claim_next(run_id, "host:1", lease_seconds=5, max_attempts=3)
        jobs.connection.commit()
        assert claim is not None
        expiry = (
            "SELECT lease_expires_at FROM {schema}._chariot_agg_partitions "
            "WHERE run_id = %s AND partition_id = %s"
        )
        granted = query(settings.postgres, expiry, (run_id, claim.partition_id))[0][0]
        with _LeaseKeeper(settings) as keeper:
            keeper.watch(claim)
            wait_for(
                lambda: (
                    query(settings.postgres, expiry, (run_id, claim.partition_id))[0][0] > granted
                ),
                timeout=10,
                interval=0.2,
            )
    finally:
        context.__exit__(None, None, None)
