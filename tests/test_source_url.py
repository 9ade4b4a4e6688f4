"""One source connection: with ``CHARIOT_MYSQL__URL`` set, every command reads the database
the URL names, never the one in the host/database fields (which then only mislead)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from chariot.config import MySQLSettings, Settings
from chariot.connections import mysql_connect
from chariot.exit_codes import ExitCode
from tests.servers import Servers
from tests.sync_support import create_source_tables, mysql_execute

pytestmark = pytest.mark.integration

URL_LINKS = 5  # rows in the database the URL names
FIELD_LINKS = 3  # rows in the database the fields name (must never be read)


def source_url(mysql: MySQLSettings, database: str, *, password: str | None = None) -> str:
    secret = password if password is not None else mysql.password.get_secret_value()
    return (
        f"mysql+pymysql://{quote(mysql.user, safe='')}:{quote(secret, safe='')}"
        f"@{mysql.host}:{mysql.port}/{database}?charset=utf8mb4"
    )


def fill_links(mysql: MySQLSettings, count: int) -> None:
    create_source_tables(mysql)
    rows = [(movie, f"{movie:07d}", movie * 10) for movie in range(1, count + 1)]
    mysql_execute(mysql, ("INSERT INTO links (movieId, imdbId, tmdbId) VALUES (%s, %s, %s)", rows))


@pytest.fixture
def url_database(servers: Servers) -> Iterator[MySQLSettings]:
    """A second fresh MySQL database: the one the URL points to."""
    name = f"chariot_t_{uuid.uuid4().hex[:12]}"
    admin = mysql_connect(servers.mysql)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield servers.mysql.model_copy(update={"database": name})
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture
def two_sources(sql_settings: Settings, url_database: MySQLSettings) -> dict[str, str]:
    """Fields name the test's database (3 links); the URL names another one (5 links)."""
    fill_links(sql_settings.mysql, FIELD_LINKS)
    fill_links(url_database, URL_LINKS)
    return {
        "CHARIOT_MYSQL__URL": source_url(url_database, url_database.database),
        "CHARIOT_RUN__SINKS": "postgres",
    }


def test_a_mysql_connection_goes_where_the_url_points(
    sql_settings: Settings, url_database: MySQLSettings
) -> None:
    mysql = sql_settings.mysql.model_copy(
        update={"url": source_url(url_database, url_database.database)}
    )
    connection = mysql_connect(mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT DATABASE()")
            assert cursor.fetchone()[0] == url_database.database
    finally:
        connection.close()


def test_status_counts_the_rows_of_the_url_database(
    cli: Any, sql_settings: Settings, two_sources: dict[str, str]
) -> None:
    result = cli("status", "--json", settings=sql_settings, env=two_sources)
    mysql = json.loads(result.stdout)["endpoints"][0]
    assert mysql["reachable"], mysql
    assert mysql["row_counts"]["links"] == URL_LINKS


def test_status_with_a_wrong_password_in_the_url_says_down(
    cli: Any, sql_settings: Settings, url_database: MySQLSettings
) -> None:
    env = {"CHARIOT_MYSQL__URL": source_url(url_database, url_database.database, password="nope")}
    result = cli("status", "--json", settings=sql_settings, env=env)
    assert result.exit_code == ExitCode.CONNECTION, result.output
    mysql = json.loads(result.stdout)["endpoints"][0]
    assert mysql["reachable"] is False
    assert "denied" in mysql["error"].lower()


def test_sync_dry_run_and_audit_agree_on_the_url_database(
    cli: Any, sql_settings: Settings, url_database: MySQLSettings, two_sources: dict[str, str]
) -> None:
    dry = cli("sync", "--dry-run", "--json", "-t", "links", settings=sql_settings, env=two_sources)
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["tables"][0]["sinks"][0]["rows_pending"] == URL_LINKS

    # keyset: a row added to the source afterwards is then missing (not a row in flight)
    synced = cli(
        "sync", "--json", "--mode", "keyset", "-t", "links", settings=sql_settings, env=two_sources
    )
    assert synced.exit_code == 0, synced.output

    # The sink now equals the URL's database: an audit of that database is clean...
    audit = cli(
        "audit", "--json", "-t", "links", "--no-summaries", settings=sql_settings, env=two_sources
    )
    assert audit.exit_code == 0, audit.output
    # ...and a row added there (not in the fields' database) is found missing.
    extra = (URL_LINKS + 1, "0000099", 990)
    mysql_execute(url_database, ("INSERT INTO links VALUES (%s, %s, %s)", extra))
    audit = cli(
        "audit", "--json", "-t", "links", "--no-summaries", settings=sql_settings, env=two_sources
    )
    assert audit.exit_code == ExitCode.DIFFERENCES, audit.output
    assert json.loads(audit.stdout)["results"][0]["missing"] == 1


def test_a_pymysql_urls_options_reach_direct_connections_too() -> None:
    from chariot.connections import _url_options

    mysql = MySQLSettings(
        url="mysql+pymysql://u:p%40ss@db.example:3307/src?unix_socket=/run/my.sock&ssl_ca=/ca.pem"
    )
    options = _url_options(mysql)
    assert options["password"] == "p@ss" and options["database"] == "src"
    assert options["unix_socket"] == "/run/my.sock" and options["ssl"] == {"ca": "/ca.pem"}


@pytest.mark.parametrize(
    "url", ["chariot:secret@@127.0.0.1::23306", "mysql+pymysql://u:p@h:3306", "mysql://u:p@h:x/db"]
)
def test_an_unusable_url_is_a_setting_error(url: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="url"):
        MySQLSettings(url=url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "mysql+pymysql://chariot:s3cr3t-pw@127.0.0.1:3306/movielens?charset=bogus",
            "unknown charset 'bogus'",
        ),
        ("mysql+nodriver://chariot:s3cr3t-pw@127.0.0.1/movielens", "is not valid"),
    ],
)
def test_a_malformed_source_url_is_a_usage_error_without_the_password(
    cli: Any, url: str, message: str
) -> None:
    """Not an internal error (70) or an unreachable server (3): the URL itself is wrong."""
    done = cli("sync", "--dry-run", "--json", env={"CHARIOT_MYSQL__URL": url})
    assert done.exit_code == ExitCode.USAGE, done.output
    error = json.loads(done.stdout)["error"]
    assert message in error["message"]
    assert "s3cr3t-pw" not in done.output


def test_the_fast_driver_replaces_pymysql_only_where_it_connects_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chariot.sources import sql

    monkeypatch.setattr(sql, "mysqlclient_installed", lambda: True)
    fields = MySQLSettings(host="127.0.0.1", database="shop")
    url = sql.fast_driver_url(fields)
    assert url == "mysql+mysqldb://" + fields.sqlalchemy_url().removeprefix("mysql+pymysql://")
    assert sql.fast_driver_url(MySQLSettings(host="localhost", database="shop")) is not None
    off = MySQLSettings(host="127.0.0.1", database="shop", fast_driver=False)
    assert sql.fast_driver_url(off) is None
    # mysqlclient would connect without the TLS PyMySQL negotiates: not across a network
    assert sql.fast_driver_url(MySQLSettings(host="db.example.com", database="shop")) is None
    assert sql.fast_driver_url(MySQLSettings(url="mysql+pymysql://u:p@10.0.0.5/shop")) is None
    for other in (
        "mysql+pymysql://u:p@127.0.0.1/shop?ssl_ca=/ca.pem",  # PyMySQL's own options: stay
        "sqlite:///shop.db",
        "postgresql+psycopg://u:p@127.0.0.1/shop",
    ):
        assert sql.fast_driver_url(MySQLSettings(url=other)) is None
    monkeypatch.setattr(sql, "mysqlclient_installed", lambda: False)
    assert sql.fast_driver_url(fields) is None


def test_the_arrow_reader_reads_only_a_source_on_this_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chariot.sources import arrow_pages

    monkeypatch.setattr(arrow_pages, "arrow_installed", lambda: True)
    local = arrow_pages.arrow_url(MySQLSettings(host="127.0.0.1", database="shop"))
    assert local is not None and local.startswith("mysql://")
    # connectorx connects without TLS: a remote source stays on PyMySQL
    assert arrow_pages.arrow_url(MySQLSettings(host="db.example.com", database="shop")) is None
    off = MySQLSettings(host="127.0.0.1", database="shop", arrow_reader=False)
    assert arrow_pages.arrow_url(off) is None
