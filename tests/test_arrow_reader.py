"""The Arrow read path (connectorx pages, CSV COPY into PostgreSQL) gives exactly what the row
path gives: the same Python values, the same rejects, the same stored PostgreSQL values; a
table with a column it cannot read exactly is read row by row."""

from __future__ import annotations

from typing import Any

import pytest

from chariot.config import Settings
from chariot.connections import postgres_connection
from chariot.project.loading import parse_project
from chariot.project.streams import project_streams
from chariot.sinks import postgres as postgres_sink
from chariot.sources.arrow_pages import arrow_installed, arrow_unsupported
from chariot.sources.sql import SqlSource
from chariot.streams import Stream
from chariot.sync import sync
from tests.sync_support import mysql_execute, rejects

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not arrow_installed(), reason="needs chariot[fast] (connectorx, pyarrow)"),
]

COLUMNS = {  # name: (MySQL type, project type, PostgreSQL type)
    "id": ("int", "int", "integer"),
    "ti": ("tinyint", "tinyint", "smallint"),
    "flag": ("tinyint(1)", "tinyint(1)", "boolean"),
    "su": ("smallint unsigned", "smallint unsigned", "integer"),
    "bi": ("bigint", "bigint", "bigint"),
    "ubi": ("bigint unsigned", "bigint unsigned", "numeric(20)"),
    "yr": ("year", "year", "smallint"),
    "d": ("decimal(10,3)", "decimal(10,3)", "numeric(10,3)"),
    "dw": ("decimal(28,10)", "decimal(28,10)", "numeric"),
    "db": ("double", "double", "double precision"),
    "da": ("date", "date", "date"),
    "dt": ("datetime", "datetime", "timestamp"),
    "dt6": ("datetime(6)", "datetime(6)", "timestamp"),
    "vc": ("varchar(64)", "varchar(64)", "text"),
    "tx": ("text", "text", "text"),
    "en": ("enum('a','b,c')", "enum('a','b,c')", "text"),
}
HOSTILE_TEXT = [
    "",
    '"',
    'say "hi", twice',
    "a,b",
    "line\nbreak\r\nand\rCR",
    "\\.",
    "\\N",
    "back\\slash",
    "tab\there",
    "caf\u00e9 \u6f22\u5b57 \U0001f600",
    "NULL",
    "  padded  ",
]
FLOATS = [
    0.1,
    0.30000000000000004,
    1e308,
    -1.7976931348623157e308,
    5e-324,
    2.2250738585072014e-308,
    -0.0,
    123456789.123456789,
    1.0,
    -2.5e-10,
    3.141592653589793,
    None,
]


def _project(types: dict[str, tuple[str, str, str]], name: str = "kinds") -> Stream:
    lines = [f'format = 1\n[tables.{name}]\nkey = ["id"]\n[tables.{name}.columns]']
    for column, (_, project_type, postgres) in types.items():
        nullable = "false" if column == "id" else "true"
        lines.append(
            f'{column} = {{ type = "{project_type}", postgres = "{postgres}", '
            f'neo4j = "string", nullable = {nullable} }}'
        )
    (stream,) = project_streams(parse_project("\n".join(lines)))
    return stream


def _source_table(settings: Settings, name: str, types: dict[str, tuple[str, str, str]]) -> None:
    columns = ", ".join(f"`{c}` {mysql}" for c, (mysql, _, _) in types.items())
    mysql_execute(
        settings.mysql,
        f"CREATE TABLE `{name}` ({columns}, PRIMARY KEY (id)) CHARACTER SET utf8mb4 "
        "COLLATE utf8mb4_bin",
    )


def _rows() -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for i in range(24):
        text = HOSTILE_TEXT[i % len(HOSTILE_TEXT)]
        rows.append(
            (
                i + 1,
                [-128, 127, 0, None][i % 4],
                [0, 1, None][i % 3],
                [0, 65535, None][i % 3],
                [-(2**63), 2**63 - 1, 0, None][i % 4],
                [0, 2**64 - 1, None][i % 3],
                [1901, 2155, None][i % 3],
                ["-9999999.999", "0.000", "1234.5", None][i % 4],
                ["-999999999999999999.9999999999", "0.0000000001", "42", None][i % 4],
                FLOATS[i % len(FLOATS)],
                ["1000-01-01", "9999-12-31", "2024-02-29", None][i % 4],
                ["1000-01-01 00:00:00", "9999-12-31 23:59:59", None][i % 3],
                ["2024-05-01 10:00:00.000001", "1970-01-01 00:00:00.5", None][i % 3],
                None if i % 5 == 4 else text,
                HOSTILE_TEXT[(i + 3) % len(HOSTILE_TEXT)] if i % 7 else None,
                ["a", "b,c", None][i % 3],
            )
        )
    return rows


def _settings(settings: Settings, *, arrow: bool, batch_size: int = 5) -> Settings:
    return settings.model_copy(
        update={
            "mysql": settings.mysql.model_copy(update={"arrow_reader": arrow}),
            "run": settings.run.model_copy(update={"batch_size": batch_size, "mode": "keyset"}),
        }
    )


def _read(settings: Settings, stream: Stream) -> tuple[list[Any], list[Any], list[Any]]:
    with SqlSource(settings) as source:
        batches = list(source.read(stream, after=None, batch_size=settings.run.batch_size))
    # repr: a Decimal's scale and a float's every bit count, not only equality.
    rows = [[(type(value), repr(value)) for value in row] for b in batches for row in b.rows]
    return rows, [r for b in batches for r in b.rejects], [(b.last_key, b.rejects) for b in batches]


def _stored(settings: Settings, table: str) -> list[tuple[Any, ...]]:
    """Each stored row as PostgreSQL's own text of every column (exact for floats)."""
    with postgres_connection(settings.postgres) as connection:
        query = f'SELECT t::text FROM "{settings.postgres.schema_name}"."{table}" t ORDER BY 1'
        return connection.execute(query).fetchall()


def test_every_qualifying_type_reads_and_stores_as_the_row_path(
    sql_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = _project(COLUMNS)
    assert arrow_unsupported(stream) is None
    _source_table(sql_settings, "kinds", COLUMNS)
    marks = ", ".join(["%s"] * len(COLUMNS))
    mysql_execute(
        sql_settings.mysql,
        *((f"INSERT INTO kinds VALUES ({marks})", row) for row in _rows()),
        # Rejects: a NUL in text, a boolean that is neither 0 nor 1.
        ("INSERT INTO kinds (id, vc) VALUES (%s, %s)", (100, "nul\x00inside")),
        ("INSERT INTO kinds (id, flag) VALUES (%s, %s)", (101, 7)),
    )
    arrow = _settings(sql_settings, arrow=True)
    rows_only = _settings(sql_settings, arrow=False)
    with SqlSource(arrow) as source:
        assert source._arrow_reader(stream, 5) is not None

    read_by_arrow = _read(arrow, stream)
    assert read_by_arrow == _read(rows_only, stream)
    assert len(read_by_arrow[0]) == 24 and len(read_by_arrow[1]) == 2

    sync(rows_only, streams=(stream,), sinks=["postgres"])
    by_rows = _stored(rows_only, "kinds")
    rejected = rejects(rows_only.postgres)
    copied_as_csv: list[int] = []
    copy_csv = postgres_sink._copy_csv
    monkeypatch.setattr(
        postgres_sink,
        "_copy_csv",
        lambda cursor, statement, columns: (
            copied_as_csv.append(columns.num_rows),
            copy_csv(cursor, statement, columns),
        ),
    )
    sync(arrow, streams=(stream,), sinks=["postgres"], full_refresh=True)  # empty: COPY again
    assert sum(copied_as_csv) == 24
    assert _stored(arrow, "kinds") == by_rows
    assert rejects(arrow.postgres).keys() == rejected.keys()
    assert {key for _, key in rejected} == {"[100]", "[101]"}
    assert len(by_rows) == 24


@pytest.mark.parametrize(
    "column",
    [
        ("ts", ("timestamp", "timestamp", "timestamptz")),
        ("f", ("float", "float", "real")),
        ("tm", ("time", "time", "interval")),
        ("vb", ("varbinary(8)", "varbinary(8)", "bytea")),
        ("st", ("set('x','y')", "set('x','y')", "text[]")),
        ("dd", ("decimal(30,2)", "decimal(30,2)", "numeric(30,2)")),
    ],
)
def test_a_column_arrow_cannot_give_exactly_reads_row_by_row(
    sql_settings: Settings, column: tuple[str, tuple[str, str, str]]
) -> None:
    name, types = column
    kinds = {"id": COLUMNS["id"], "vc": COLUMNS["vc"], name: types}
    stream = _project(kinds, "other")
    assert arrow_unsupported(stream) is not None
    _source_table(sql_settings, "other", kinds)
    mysql_execute(sql_settings.mysql, ("INSERT INTO other (id, vc) VALUES (%s, %s)", (1, "x")))
    arrow = _settings(sql_settings, arrow=True)
    with SqlSource(arrow) as source:
        assert source._arrow_reader(stream, 5) is None
    result = sync(arrow, streams=(stream,), sinks=["postgres"])
    assert result.tables[0].rows_read == 1
    assert len(_stored(arrow, "other")) == 1


def test_a_text_key_reads_row_by_row() -> None:
    text = (
        'format = 1\n[tables.t]\nkey = ["k"]\n[tables.t.columns]\n'
        'k = { type = "varchar(10)", postgres = "text", neo4j = "string" }\n'
    )
    (stream,) = project_streams(parse_project(text))
    assert arrow_unsupported(stream) == "key column k is not an integer"


SCREENED = """format = 1
[tables.screened]
key = ["id"]
[tables.screened.columns]
id = { type = "int", postgres = "integer", neo4j = "integer" }
r = { type = "decimal(2,1)", postgres = "numeric(2,1)", min = 0.5, max = 5.0, step = 0.5 }
q = { type = "decimal(10,3)", postgres = "numeric(10,3)", step = 0.25, nullable = true }
n = { type = "int", postgres = "integer", min = 0, max = 1e9, step = 100000, nullable = true }
s = { type = "smallint unsigned", postgres = "integer", neo4j = "integer" }
vc = { type = "varchar(20)", postgres = "text", neo4j = "string", nullable = true }
"""
SCREENED_ROWS = [  # id, r, q, n, s, vc: (the reason the row path gives, if any)
    (1, "0.5", "0.250", 0, 1, "fine"),
    (2, "5.0", "-1.750", 1_000_000_000, 65535, None),
    (3, "0.4", None, None, 2, "x"),  # rating below the range
    (4, "5.5", None, None, 3, "x"),  # above it
    (5, "1.3", None, None, 4, "x"),  # off the step
    (6, None, None, None, 5, "x"),  # NULL in a required column
    (7, "2.0", "0.100", None, 6, "x"),  # q off its step of 0.25
    (8, "2.0", None, 100_001, 7, "x"),  # MySQL rounds 1.00001 to 1.0000: a multiple, loads
    (9, "2.0", None, 150_000, 8, "x"),  # n off its step
    (10, "2.0", None, -1, 9, "x"),  # n below its range
    (11, "2.0", None, None, 10, "nul\x00inside"),  # a NUL character
    (12, "2.0", None, None, None, "x"),  # NULL in another required column
]


def test_rules_screened_in_arrow_reject_what_the_servers_case_rejects(
    sql_settings: Settings,
) -> None:
    (stream,) = project_streams(parse_project(SCREENED))
    assert arrow_unsupported(stream) is None
    mysql_execute(
        sql_settings.mysql,
        "CREATE TABLE screened (id int PRIMARY KEY, r decimal(2,1), q decimal(10,3), n int, "
        "s smallint unsigned, vc varchar(20)) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        *(("INSERT INTO screened VALUES (%s, %s, %s, %s, %s, %s)", row) for row in SCREENED_ROWS),
    )
    arrow = _settings(sql_settings, arrow=True, batch_size=4)
    with SqlSource(arrow) as source:
        reader = source._arrow_reader(stream, 4)
        assert reader is not None and reader.screens is not None
        assert "CASE" not in reader.statement(None)  # the server computes no reason
    by_arrow = _read(arrow, stream)
    assert by_arrow == _read(_settings(sql_settings, arrow=False, batch_size=4), stream)
    assert [reject.key for reject in by_arrow[1]] == [
        (3,),
        (4,),
        (5,),
        (6,),
        (7,),
        (9,),
        (10,),
        (11,),
        (12,),
    ]
