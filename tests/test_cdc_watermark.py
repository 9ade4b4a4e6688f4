"""Watermark snapshots (DBLog): a first copy made in chunks while the log is applied.

A real MariaDB source with its binary log on (tests/cdc_support.py) and a sink that keeps
its tables in Python dicts (a test sink implementing ``ChangeSink``, not a database mock:
it applies each batch whole or not at all, like a transaction). The source keeps changing
while the chunks are read: a thread commits random changes the whole time, and a hook
changes rows of each chunk INSIDE its watermark window, where a chunk row that was not
dropped would overwrite the newer change (so the tests can fail). The sink must end equal
to the source; a run stopped after N chunks resumes after the stored checkpoint.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import SecretStr

from chariot.batch import Batch, Key, Reject, WriteResult
from chariot.cdc import watermark
from chariot.cdc.changes import ChangeBatch
from chariot.cdc.position import LogPosition
from chariot.cdc.watermark import watermark_ddl
from chariot.config import MySQLSettings, PostgresSettings, RunSettings, Settings
from chariot.connections import mysql_connect
from chariot.errors import SourceReadError
from chariot.exit_codes import ExitCode
from chariot.sinks.base import ChangeSink
from chariot.streams import Column, Reference, Stream
from chariot.sync import sync
from tests.cdc_support import execute

pytestmark = pytest.mark.integration

ITEMS = Stream(
    "items",
    "items",
    (
        Column("id", "id", "int", source_type="int", postgres="integer"),
        Column("label", "label", "text", nullable=True, source_type="varchar(40)"),
        Column("qty", "qty", "int", source_type="int", postgres="integer"),  # NULL: a reject
    ),
    key=("id",),
)
ROWS = 600
CHUNK = 40
REJECTED = (7, 307)  # seeded with a NULL qty; the workload never touches them


@dataclass
class Store:
    """What the dict sink holds, shared by every instance a sync creates."""

    rows: dict[str, dict[Key, tuple[Any, ...]]] = field(default_factory=dict)
    rejects: dict[str, dict[Key, str]] = field(default_factory=dict)
    positions: dict[str, LogPosition] = field(default_factory=dict)
    checkpoints: dict[str, Key] = field(default_factory=dict)
    complete: set[str] = field(default_factory=set)
    chunks: list[Key] = field(default_factory=list)  # each applied chunk's checkpoint
    first_chunk_keys: list[Key] = field(default_factory=list)  # lowest upsert of each chunk
    fail_at_chunk: int | None = None  # a "crash" inside this chunk's transaction


def dict_sink(store: Store) -> type[ChangeSink]:
    class DictSink(ChangeSink):
        name = "dict"

        def prepare(self, stream: Stream, *, full_refresh: bool = False) -> None:
            store.rows.setdefault(stream.name, {})
            if full_refresh:
                store.rows[stream.name] = {}
                store.rejects.pop(stream.name, None)
                store.checkpoints.pop(stream.name, None)
                store.complete.discard(stream.name)

        def table_complete(self, stream: Stream) -> None:
            store.complete.add(stream.name)

        def checkpoint(self, stream: Stream) -> Key | None:
            return store.checkpoints.get(stream.name)

        def write(self, batch: Batch) -> WriteResult:
            self.upsert_rows(batch.stream, batch.rows)
            if batch.last_key:
                store.checkpoints[batch.stream.name] = batch.last_key
            return WriteResult(written=len(batch.rows), rejected=list(batch.rejects))

        def upsert_rows(self, stream: Stream, rows: list[tuple[Any, ...]]) -> int:
            table = store.rows.setdefault(stream.name, {})
            for row in rows:
                table[tuple(row[p] for p in stream.key_positions)] = tuple(row)
            return len(rows)

        def delete_keys(self, stream: Stream, keys: list[Key]) -> int:
            table = store.rows.setdefault(stream.name, {})
            return sum(table.pop(key, None) is not None for key in keys)

        def log_positions(self) -> dict[str, LogPosition]:
            return dict(store.positions)

        def start_log(self, stream: Stream, position: LogPosition) -> None:
            store.positions[stream.name] = position

        def forget_log(self, stream: Stream) -> None:
            store.positions.pop(stream.name, None)

        def apply(self, batch: ChangeBatch) -> None:
            # All or nothing, like a transaction: a failure is raised before any change.
            if batch.checkpoints and store.fail_at_chunk == len(store.chunks) + 1:
                raise RuntimeError("simulated crash inside a chunk's transaction")
            rows, rejects = store.rows, store.rejects
            for table in reversed(batch.tables):
                for key in table.deletes:
                    rows.setdefault(table.stream.name, {}).pop(key, None)
            for table in batch.tables:
                held = rows.setdefault(table.stream.name, {})
                refused = rejects.setdefault(table.stream.name, {})
                for row in table.upserts:
                    key = tuple(row[p] for p in table.stream.key_positions)
                    held[key] = tuple(row)
                    refused.pop(key, None)
                for reject in table.rejects:
                    held.pop(reject.key, None)
                    refused[reject.key] = reject.reason
            if batch.checkpoints:
                store.chunks.extend(batch.checkpoints.values())
                upserted = [
                    tuple(row[p] for p in t.stream.key_positions)
                    for t in batch.tables
                    for row in t.upserts
                ]
                store.first_chunk_keys.append(min(upserted) if upserted else ())
            store.checkpoints.update(batch.checkpoints)
            for name in batch.positioned:
                store.positions[name] = batch.position

        def keys_referencing(
            self, stream: Stream, columns: tuple[str, ...], values: list[Key]
        ) -> list[Key]:
            wanted = set(values)
            positions = [stream.source_columns.index(column) for column in columns]
            return [
                key
                for key, row in store.rows.get(stream.name, {}).items()
                if tuple(row[p] for p in positions) in wanted
            ]

        def recorded_rejects(self, *, limit: int = 100) -> tuple[dict[str, int], list[Reject]]:
            found = [Reject(t, k, r) for t, keys in store.rejects.items() for k, r in keys.items()]
            return {t: len(keys) for t, keys in store.rejects.items()}, found[:limit]

    return DictSink


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Store:
    held = Store()
    sink = dict_sink(held)
    monkeypatch.setattr("chariot.sync.conductor.load_sink", lambda name: sink)
    return held


@pytest.fixture
def source(binlog_mysql: MySQLSettings) -> MySQLSettings:
    values = ", ".join(
        f"({i}, 'item {i}', {'NULL' if i in REJECTED else i % 13})" for i in range(1, ROWS + 1)
    )
    execute(
        binlog_mysql,
        "CREATE TABLE items (id int PRIMARY KEY, label varchar(40), qty int)",
        watermark_ddl("chariot_watermarks"),
        f"INSERT INTO items VALUES {values}",
    )
    return binlog_mysql


def _settings(mysql: MySQLSettings) -> Settings:
    return Settings(mysql=mysql, run=RunSettings(snapshot="watermark", batch_size=CHUNK))


def _sync(settings: Settings) -> Any:
    return sync(settings, sinks=["dict"], streams=(ITEMS,), mode="cdc")


class Workload:
    """Random single-row changes on ``items`` (never the rejected rows), in a thread."""

    def __init__(self, mysql: MySQLSettings, seed: int) -> None:
        self.random = random.Random(seed)
        self.connection = mysql_connect(mysql, autocommit=True)
        self.next_id = ROWS + 1
        self.stop = threading.Event()
        self.changes = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Workload:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()
        self.connection.close()

    def _run(self) -> None:
        # A steady stream (~300 changes/s), not a flood the reader could never catch up with.
        while not self.stop.wait(0.003):
            self.change(self.random.randint(1, ROWS + 100))

    def change(self, target: int) -> None:
        if target in REJECTED:
            return
        kind = self.random.choice(("insert", "update", "delete", "move"))
        with self.connection.cursor() as cursor:
            if kind == "insert":
                below = self.random.random() < 0.5
                key = target if below else self.next_id
                self.next_id += 0 if below else 1
                cursor.execute(
                    "INSERT INTO items VALUES (%s, %s, 1) ON DUPLICATE KEY UPDATE qty = qty + 1",
                    (key, f"new {key}"),
                )
            elif kind == "update":
                cursor.execute(
                    "UPDATE items SET label = %s WHERE id = %s", (uuid.uuid4().hex[:8], target)
                )
            elif kind == "delete":
                cursor.execute("DELETE FROM items WHERE id = %s", (target,))
            else:  # a key change: to a free key far above
                cursor.execute(
                    "UPDATE IGNORE items SET id = %s WHERE id = %s", (self.next_id + 5000, target)
                )
                self.next_id += 1
        self.changes += 1


@pytest.fixture
def in_window(source: MySQLSettings) -> Iterator[list[int]]:
    """Inside every chunk's watermark window: update one of its rows, delete another, move
    a third to a new key, and insert a row inside its key range. Each is a change that a
    stale chunk row would undo. Returns the ids touched (for the test to check)."""
    touched: list[int] = []
    connection = mysql_connect(source, autocommit=True)

    def change_rows(stream: Stream, rows: list[tuple[Any, ...]]) -> None:
        ids = [row[0] for row in rows if row[0] not in REJECTED]
        if len(ids) < 4:
            return
        with connection.cursor() as cursor:
            cursor.execute("UPDATE items SET label = 'in window' WHERE id = %s", (ids[0],))
            cursor.execute("DELETE FROM items WHERE id = %s", (ids[1],))
            cursor.execute("UPDATE items SET id = id + 100000 WHERE id = %s", (ids[2],))
            cursor.execute("UPDATE items SET qty = qty + 1000 WHERE id = %s", (ids[3],))
        touched.extend(ids[:4])

    watermark.between_watermarks = change_rows
    try:
        yield touched
    finally:
        watermark.between_watermarks = None
        connection.close()


def source_rows(mysql: MySQLSettings) -> dict[Key, tuple[Any, ...]]:
    connection = mysql_connect(mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, label, qty FROM items WHERE qty IS NOT NULL")
            return {(row[0],): tuple(row) for row in cursor.fetchall()}
    finally:
        connection.close()


def _assert_equal(store: Store, mysql: MySQLSettings) -> None:
    expected = source_rows(mysql)
    held = store.rows["items"]
    missing = sorted(set(expected) - set(held))[:5]
    extra = sorted(set(held) - set(expected))[:5]
    wrong = [key for key in expected if key in held and held[key] != expected[key]][:5]
    assert not (missing or extra or wrong), f"missing {missing} extra {extra} wrong {wrong}"
    assert set(store.rejects.get("items", {})) == {(i,) for i in REJECTED}


def test_a_chunked_first_copy_under_changes_ends_equal_to_the_source(
    source: MySQLSettings, store: Store, in_window: list[int]
) -> None:
    settings = _settings(source)
    with Workload(source, seed=3) as workload:
        result = _sync(settings)
        assert not result.failures, result.failures
        assert workload.changes > 0
    assert "items" in store.complete
    assert len(store.chunks) >= ROWS // CHUNK  # the copy went chunk by chunk
    assert len(in_window) >= 4 * (ROWS // CHUNK - 2)  # and rows changed inside the windows
    # The first run stops once every chunk is in; one more catches up with the workload.
    result = _sync(settings)
    assert not result.failures, result.failures
    _assert_equal(store, source)
    assert store.rows["items"][(in_window[0],)][1] == "in window"


def test_a_snapshot_stopped_after_n_chunks_resumes_after_its_checkpoint(
    source: MySQLSettings, store: Store, in_window: list[int]
) -> None:
    settings = _settings(source)
    store.fail_at_chunk = 4  # chunks 1-3 commit, the 4th fails inside its transaction
    with Workload(source, seed=5):
        result = _sync(settings)
        assert result.failures
        assert len(store.chunks) == 3
        assert store.checkpoints["items"] == store.chunks[-1]
        assert "items" not in store.complete
        stopped_at = store.chunks[-1]
        store.fail_at_chunk = None
        result = _sync(settings)
        assert not result.failures, result.failures
    # The second run's first chunk starts right after the first run's last checkpoint.
    assert store.first_chunk_keys[3] > stopped_at
    assert "items" in store.complete
    result = _sync(settings)
    assert not result.failures, result.failures
    _assert_equal(store, source)


@pytest.fixture
def reader_without_watermark_grant(source: MySQLSettings) -> Iterator[MySQLSettings]:
    """A user with every change-capture grant but none on the watermark table."""
    name = f"cdc_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    admin = mysql_connect(source, autocommit=True)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'")
            cursor.execute(f"GRANT SELECT ON `{source.database}`.* TO '{name}'@'%'")
            cursor.execute(
                f"GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* "
                f"TO '{name}'@'%'"
            )
        yield source.model_copy(update={"user": name, "password": SecretStr(password)})
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{name}'@'%'")
        admin.close()


def test_a_user_without_the_watermark_grant_is_told_the_grant(
    reader_without_watermark_grant: MySQLSettings, store: Store
) -> None:
    settings = _settings(reader_without_watermark_grant)
    with pytest.raises(SourceReadError) as raised:
        _sync(settings)
    error = raised.value
    assert error.exit_code == ExitCode.SOURCE_READ == 4
    assert "\n" not in str(error)
    database = reader_without_watermark_grant.database
    assert f"GRANT INSERT, UPDATE ON `{database}`.`chariot_watermarks`" in (error.hint or "")
    assert store.positions == {}  # stopped before anything was started


def test_a_missing_watermark_table_is_told_how_to_create_it(
    binlog_mysql: MySQLSettings, store: Store
) -> None:
    execute(binlog_mysql, "CREATE TABLE items (id int PRIMARY KEY, label varchar(40), qty int)")
    with pytest.raises(SourceReadError) as raised:
        _sync(_settings(binlog_mysql))
    assert "CREATE TABLE `chariot_watermarks`" in (raised.value.hint or "")


def test_a_chunked_first_copy_into_postgres_ends_equal_to_the_source(
    source: MySQLSettings, postgres_settings: PostgresSettings, in_window: list[int]
) -> None:
    from chariot.connections import postgres_connection

    settings = _settings(source).model_copy(update={"postgres": postgres_settings})
    with Workload(source, seed=7):
        result = sync(settings, sinks=["postgres"], streams=(ITEMS,), mode="cdc")
        assert not result.failures, result.failures
    assert in_window
    result = sync(settings, sinks=["postgres"], streams=(ITEMS,), mode="cdc")
    assert not result.failures, result.failures
    schema = postgres_settings.schema_name
    with postgres_connection(postgres_settings) as connection:
        held = {
            (row[0],): tuple(row)
            for row in connection.execute(f'SELECT id, label, qty FROM "{schema}".items')
        }
        rejects = {
            tuple(json.loads(row[0]))
            for row in connection.execute(
                f'SELECT row_key::text FROM "{schema}"._chariot_rejects WHERE table_name = %s',
                ("items",),
            )
        }
        loading = connection.execute(f'SELECT count(*) FROM "{schema}"._chariot_loads').fetchone()
        mark = connection.execute(
            f'SELECT high_water_mark FROM "{schema}"._chariot_checkpoints WHERE table_name = %s',
            ("items",),
        ).fetchone()
    expected = source_rows(source)
    assert sorted(set(expected) ^ set(held))[:5] == []
    assert [key for key in expected if held[key] != expected[key]][:5] == []
    assert rejects == {(i,) for i in REJECTED}
    assert loading is not None and loading[0] == 0  # the first copy is complete
    assert mark is not None and mark[0]  # the chunks moved the checkpoint


PARENTS = Stream(
    "parents",
    "parents",
    (Column("id", "id", "int", source_type="int", postgres="integer"),),
    key=("id",),
)
CHILDREN = Stream(
    "children",
    "children",
    (
        Column("id", "id", "int", source_type="int", postgres="integer"),
        Column("pid", "pid", "int", nullable=True, source_type="int", postgres="integer"),
    ),
    key=("id",),
    references=(Reference("parents", ("pid",), on_delete="set null", on_update="cascade"),),
)


def test_a_foreign_key_action_inside_a_window_makes_the_chunk_read_again(
    binlog_mysql: MySQLSettings, store: Store
) -> None:
    """A parent's key change inside a child chunk's window cascades to the children with
    no row event of theirs: the chunk read before it is stale, so it must be read again."""
    execute(
        binlog_mysql,
        "CREATE TABLE parents (id int PRIMARY KEY)",
        "CREATE TABLE children (id int PRIMARY KEY, pid int, FOREIGN KEY (pid) "
        "REFERENCES parents (id) ON DELETE SET NULL ON UPDATE CASCADE)",
        watermark_ddl("chariot_watermarks"),
        "INSERT INTO parents VALUES " + ", ".join(f"({i})" for i in range(1, 11)),
        "INSERT INTO children VALUES " + ", ".join(f"({i}, {i % 10 + 1})" for i in range(1, 101)),
    )
    connection = mysql_connect(binlog_mysql, autocommit=True)
    moves = iter(range(1, 11))

    def move_a_parent(stream: Stream, rows: list[tuple[Any, ...]]) -> None:
        if stream.name != "children":
            return
        parent = next(moves, None)
        if parent is not None:  # 1 -> 101, 2 -> 102, ...: every child of it cascades
            with connection.cursor() as cursor:
                cursor.execute("UPDATE parents SET id = %s WHERE id = %s", (parent + 100, parent))
            if parent == 1:  # and once a delete: SET NULL on its children
                with connection.cursor() as cursor:
                    cursor.execute("DELETE FROM parents WHERE id = 101")

    watermark.between_watermarks = move_a_parent
    try:
        settings = _settings(binlog_mysql)
        result = sync(settings, sinks=["dict"], streams=(PARENTS, CHILDREN), mode="cdc")
        assert not result.failures, result.failures
    finally:
        watermark.between_watermarks = None
        connection.close()
    with mysql_connect(binlog_mysql) as reader, reader.cursor() as cursor:
        cursor.execute("SELECT id, pid FROM children")
        expected = {(row[0],): tuple(row) for row in cursor.fetchall()}
    assert store.rows["children"] == expected
    assert "children" in store.complete
