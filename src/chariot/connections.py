"""Opening connections to the three servers, with failures turned into ``ConnectionFailed``.

Drivers are imported lazily so ``chariot --help`` does not pay for them. Error messages
name the server and its redacted address; driver messages never contain passwords, and we
never format connection strings into them.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from chariot.config import MySQLSettings, Neo4jSettings, PostgresSettings
from chariot.errors import ConfigError, ConnectionFailed

if TYPE_CHECKING:
    import psycopg
    import pymysql.connections
    import sqlalchemy
    from neo4j import Driver


# Every source session reads TIMESTAMP columns in UTC (the value contract: aware datetimes in
# UTC), whatever the server's own time zone is.
SOURCE_SESSION_SETUP = "SET time_zone = '+00:00'"


def mysql_connect(settings: MySQLSettings, **kwargs: Any) -> pymysql.connections.Connection:
    """A pymysql connection to the MySQL source (utf8mb4, LOCAL INFILE allowed, time zone
    UTC), at the address that ``CHARIOT_MYSQL__URL`` or else the fields name (as every
    command sees it)."""
    import pymysql

    address = settings.address()
    if not address.is_mysql:
        raise ConfigError(
            f"this command needs a MySQL or MariaDB source, not {address.display}",
            hint="unset CHARIOT_MYSQL__URL or point it at MySQL/MariaDB",
        )
    _check_url(settings)
    options: dict[str, Any] = {
        "host": address.host or "localhost",
        "port": address.port or 3306,
        "user": address.user or "",
        "password": address.password or "",
        "database": address.database,
        "charset": "utf8mb4",
        "local_infile": True,
        "connect_timeout": 10,
        "autocommit": False,
        "init_command": SOURCE_SESSION_SETUP,
        **_url_options(settings),
    }
    try:
        return open_pymysql({**options, **kwargs})  # callers may override any default
    except pymysql.err.MySQLError as error:
        raise ConnectionFailed(
            f"MySQL source at {address.display}: {_driver_message(error)}",
            hint=_hint_for(str(error), _mysql_prefix(settings)),
        ) from error


def open_pymysql(options: dict[str, Any]) -> pymysql.connections.Connection:
    """``pymysql.connect(**options)``, without its cost per connection: with no ``ssl*``
    option PyMySQL tries TLS if the server offers it, verifying nothing, yet builds a new
    context and loads the system's CA store for every connection (~0.1 s each, ~1 s of a
    no-change sync). That unverified context is the same every time: build it once."""
    return _source_connection_class()(**options)


@cache
def _source_connection_class() -> type[pymysql.connections.Connection]:
    import pymysql.connections

    class SourceConnection(pymysql.connections.Connection):  # type: ignore[misc]
        def _create_ssl_ctx(self, sslp: Any) -> ssl.SSLContext:
            if isinstance(sslp, dict) and not sslp:  # preferred mode: no CA, no checks
                return _preferred_tls_context()
            return super()._create_ssl_ctx(sslp)  # type: ignore[no-any-return]

    return SourceConnection


@cache
def _preferred_tls_context() -> ssl.SSLContext:
    """What PyMySQL's preferred mode builds without CA options: TLS, no verification."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _open_source_connection(
    _dialect: Any, _record: Any, args: list[Any], params: dict[str, Any]
) -> pymysql.connections.Connection | None:
    """SQLAlchemy's connect for the pymysql source engine (``do_connect``; None: the
    dialect's own, for arguments PyMySQL takes only by keyword)."""
    return None if args else open_pymysql(params)


def _url_options(settings: MySQLSettings) -> dict[str, Any]:
    """A pymysql URL's own options (ssl_*, unix_socket, charset ...) exactly as SQLAlchemy
    passes them to the driver, so the engine and direct connections connect alike."""
    if not settings.url or settings.address().drivername.split("+")[-1] != "pymysql":
        return {}
    from sqlalchemy.engine import make_url

    url = make_url(settings.url)
    _, options = url.get_dialect()().create_connect_args(url)
    return dict(options)


def source_engine(settings: MySQLSettings, *, url: str | None = None) -> sqlalchemy.engine.Engine:
    """A SQLAlchemy engine for the source (MySQL, or any URL given as ``CHARIOT_MYSQL__URL``);
    ``url``: the same server through another driver (``chariot.sources.sql.fast_driver_url``),
    messages still naming ``settings``' address."""
    import sqlalchemy

    _check_charset(settings)
    try:
        engine = sqlalchemy.create_engine(url or settings.sqlalchemy_url(), pool_pre_ping=True)
        if engine.dialect.name in ("mysql", "mariadb"):
            if engine.dialect.driver == "pymysql":
                sqlalchemy.event.listen(engine, "do_connect", _open_source_connection)
            sqlalchemy.event.listen(engine, "connect", _setup_source_session)
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        return engine
    except sqlalchemy.exc.ArgumentError as error:  # an unknown driver among them
        raise ConfigError(
            f"source URL {settings.display_url()} is not valid: {error}",
            hint="use the pymysql driver: a URL that starts with mysql+pymysql://",
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as error:
        cause = getattr(error, "orig", None) or error
        raise ConnectionFailed(
            f"{source_label(settings)} at {settings.display_url()}: {_driver_message(cause)}",
            hint=_hint_for(str(cause), _mysql_prefix(settings)),
        ) from error


def _check_url(settings: MySQLSettings) -> None:
    """What creating the engine refuses in a URL (an unknown driver or charset), refused
    the same way before a direct connection, which would otherwise ignore the driver or
    fail deep inside PyMySQL."""
    if not settings.url:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    _check_charset(settings)
    try:
        make_url(settings.url).get_dialect()
    except ArgumentError as error:
        raise ConfigError(
            f"source URL {settings.display_url()} is not valid: {error}",
            hint="use the pymysql driver: a URL that starts with mysql+pymysql://",
        ) from None


def _check_charset(settings: MySQLSettings) -> None:
    """PyMySQL fails on an unknown ``?charset=`` with an AttributeError deep inside; say it."""
    if not settings.url:
        return
    from sqlalchemy.engine import make_url

    charset = make_url(settings.url).query.get("charset")
    if isinstance(charset, str) and settings.url.startswith(("mysql", "mariadb")):
        from pymysql.charset import charset_by_name

        if charset_by_name(charset) is None:
            raise ConfigError(
                f"source URL {settings.display_url()}: unknown charset {charset!r}",
                hint="use ?charset=utf8mb4 (or leave it out)",
            )


def _setup_source_session(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(SOURCE_SESSION_SETUP)
    finally:
        cursor.close()


def postgres_connect(settings: PostgresSettings, **kwargs: Any) -> psycopg.Connection[Any]:
    """A psycopg 3 connection to the PostgreSQL sink."""
    import psycopg

    try:
        return psycopg.connect(**settings.connect_kwargs(), **kwargs)
    except psycopg.Error as error:
        raise ConnectionFailed(
            f"PostgreSQL sink at {settings.display_url()}: {_driver_message(error)}",
            hint=_hint_for(str(error), "CHARIOT_POSTGRES"),
        ) from error


def first_value(row: Any) -> Any:
    """The first column of a row that a query always returns (a count, a catalog lookup)."""
    if row is None:
        raise RuntimeError("query returned no row")  # a bug, not a user error
    return row[0]


def ensure_postgres_schema(connection: psycopg.Connection[Any], schema: str) -> None:
    """Create ``schema`` unless the catalog already has it.

    ``CREATE SCHEMA IF NOT EXISTS`` alone is not enough: it needs CREATE on the database even
    when the schema exists, which a role that owns only its schema does not have.
    """
    from psycopg import sql

    found = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
    if found.fetchone() is None:
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


@contextmanager
def postgres_connection(
    settings: PostgresSettings, **kwargs: Any
) -> Iterator[psycopg.Connection[Any]]:
    connection = postgres_connect(settings, **kwargs)
    try:
        yield connection
    finally:
        connection.close()


def neo4j_driver(settings: Neo4jSettings) -> Driver:
    """A verified Neo4j driver (connectivity and credentials checked up front)."""
    import neo4j
    from neo4j.exceptions import Neo4jError, ServiceUnavailable

    driver = neo4j.GraphDatabase.driver(
        settings.uri,
        auth=(settings.user, settings.password.get_secret_value()),
        connection_timeout=10,
        max_transaction_retry_time=15,
        notifications_min_severity="OFF",
    )
    try:
        driver.verify_connectivity()
    except (Neo4jError, ServiceUnavailable, OSError, ValueError) as error:
        driver.close()
        raise ConnectionFailed(
            f"Neo4j sink at {settings.display_url()}: {_driver_message(error)}",
            hint=_hint_for(str(error), "CHARIOT_NEO4J"),
        ) from error
    except Exception as error:  # the driver raises a few non-Neo4jError types on auth/routing
        driver.close()
        raise ConnectionFailed(
            f"Neo4j sink at {settings.display_url()}: {_driver_message(error)}",
            hint=_hint_for(str(error), "CHARIOT_NEO4J"),
        ) from error
    return driver


@contextmanager
def neo4j_session(settings: Neo4jSettings) -> Iterator[Any]:
    driver = neo4j_driver(settings)
    try:
        with driver.session(database=settings.database) as session:
            yield session
    finally:
        driver.close()


def _driver_message(error: BaseException) -> str:
    """The first line of a driver error, without the class-name noise."""
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    if isinstance(error.args, tuple) and len(error.args) == 2 and isinstance(error.args[0], int):
        message = str(error.args[1])  # pymysql: (code, message)
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    text = lines[0]
    # The Neo4j driver ends its first line with ":" and gives the cause on the next one.
    if text.endswith(":") and len(lines) > 1:
        text = f"{text} {lines[1]}"
    return text.removeprefix("connection failed: ")


def source_label(settings: MySQLSettings) -> str:
    """How messages name the source: "MySQL source" unless the URL names another database."""
    return "MySQL source" if settings.is_mysql else "source"


def _mysql_prefix(settings: MySQLSettings) -> str:
    return "CHARIOT_MYSQL__URL" if settings.url else "CHARIOT_MYSQL"


def _hint_for(message: str, prefix: str) -> str | None:
    """``prefix`` is a section (``CHARIOT_NEO4J``) or a URL setting naming everything."""
    lowered = message.lower()
    if any(
        word in lowered for word in ("password", "access denied", "unauthorized", "authentication")
    ):
        if prefix.endswith("__URL"):
            return f"check the user and password in {prefix}"
        return f"check {prefix}__USER and {prefix}__PASSWORD"
    if any(
        word in lowered
        for word in ("refused", "unavailable", "timed out", "can't connect", "couldn't connect")
    ):
        return "is the server running? `make services` starts local ones"
    if "unknown database" in lowered or "does not exist" in lowered:
        return (
            f"check the database in {prefix}"
            if prefix.endswith("__URL")
            else f"check {prefix}__DATABASE"
        )
    return None
