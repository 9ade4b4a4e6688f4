"""Source connections share PyMySQL's preferred-TLS context instead of rebuilding it."""

from __future__ import annotations

import pytest

from chariot.config import MySQLSettings
from chariot.connections import mysql_connect, source_engine

pytestmark = pytest.mark.integration


def test_connections_share_one_unverified_tls_context(mysql_settings: MySQLSettings) -> None:
    # Loading the system CA store took ~0.1 s per connection, for a context that verifies
    # nothing (no CA given): about a second of every short command.
    first, second = mysql_connect(mysql_settings), mysql_connect(mysql_settings)
    engine = source_engine(mysql_settings)
    try:
        with engine.connect() as connection:
            pooled = connection.connection.dbapi_connection
            assert first.ctx is second.ctx is pooled.ctx  # type: ignore[union-attr]
        with first.cursor() as cursor:
            cursor.execute("SELECT @@session.time_zone")
            assert cursor.fetchone() == ("+00:00",)
    finally:
        first.close()
        second.close()
        engine.dispose()
