"""A recorded reject is forgotten once its row loads, whatever the type of its key.

The key is recorded as Python renders it (``key_json``); the keyset writer used to match
it against PostgreSQL's own rendering (``jsonb_build_array(...)::text``), which differs
for datetimes (``T``), decimals (a number), times and bytes: such rejects stayed forever.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from chariot.batch import Batch, Reject
from chariot.config import PostgresSettings, Settings
from chariot.project.loading import parse_project
from chariot.project.streams import project_streams
from chariot.sinks.postgres import PostgresSink
from chariot.streams import Stream
from tests.sync_support import rejects

pytestmark = pytest.mark.integration

# (source type, PostgreSQL type, a key value as the source reader yields it)
KEY_TYPES: dict[str, tuple[str, str, Any]] = {
    "datetime": ("datetime", "timestamp", dt.datetime(2024, 5, 1, 10, 0, 0)),
    "datetime_fraction": ("datetime(6)", "timestamp", dt.datetime(2024, 5, 1, 10, 0, 0, 5)),
    "timestamp": (
        "timestamp",
        "timestamptz",
        dt.datetime(2024, 5, 1, 10, 0, 0, tzinfo=dt.UTC),
    ),
    "decimal": ("decimal(6,2)", "numeric(6,2)", Decimal("12.50")),
    "date": ("date", "date", dt.date(2024, 5, 1)),
    "time": ("time", "interval", dt.timedelta(hours=1, minutes=2, seconds=3)),
    "varbinary": ("varbinary(8)", "bytea", b"\x00ab"),
}


def _stream(source_type: str, postgres_type: str) -> Stream:
    text = f"""
format = 1
[tables.events]
key = ["at"]
[tables.events.columns]
at = {{ type = "{source_type}", postgres = "{postgres_type}", neo4j = "string" }}
note = {{ type = "varchar(20)", postgres = "text", neo4j = "string" }}
"""
    (stream,) = project_streams(parse_project(text))
    return stream


@pytest.fixture
def sink(postgres_settings: PostgresSettings) -> Iterator[PostgresSink]:
    with PostgresSink(Settings(postgres=postgres_settings)) as opened:
        yield opened


@pytest.mark.parametrize("kind", sorted(KEY_TYPES))
def test_a_reject_is_forgotten_once_its_row_loads(
    kind: str, sink: PostgresSink, postgres_settings: PostgresSettings
) -> None:
    source_type, postgres_type, key = KEY_TYPES[kind]
    stream = _stream(source_type, postgres_type)
    sink.prepare(stream)
    sink.write(Batch(stream, [], (key,), [Reject("events", (key,), "NULL note")]))
    assert len(rejects(postgres_settings)) == 1

    sink.write(Batch(stream, [(key, "fixed")], (key,)))  # fixed in the source, read again

    assert rejects(postgres_settings) == {}
