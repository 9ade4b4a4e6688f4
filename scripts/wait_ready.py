"""Wait until a development server answers a real query with the configured credentials.

Used by scripts/services.sh with the project venv (.venv/bin/python), so the same drivers
Chariot uses (pymysql, psycopg, neo4j) do the check:

    python scripts/wait_ready.py mariadb|postgres|neo4j [--timeout S] [--pid PID]

Settings come from the CHARIOT_MYSQL__*, CHARIOT_POSTGRES__*, CHARIOT_NEO4J__* environment
variables (services.sh exports them from .env / .env.example).

Exit status: 0 ready; 1 timed out or the server process (--pid) died; 2 authentication
refused (waiting longer will not help); 3 the driver is not installed (caller falls back).
"""

from __future__ import annotations

import argparse
import os
import sys
import time


class AuthFailed(Exception):
    pass


def _env(key: str, default: str | None = None) -> str:
    value = os.environ.get(key, default)
    if value is None:
        raise SystemExit(f"wait_ready: {key} is not set")
    return value


def probe_mariadb() -> None:
    import pymysql

    try:
        conn = pymysql.connect(
            host=_env("CHARIOT_MYSQL__HOST", "127.0.0.1"),
            port=int(_env("CHARIOT_MYSQL__PORT", "3306")),
            user=_env("CHARIOT_MYSQL__USER"),
            password=_env("CHARIOT_MYSQL__PASSWORD"),
            database=_env("CHARIOT_MYSQL__DATABASE"),
            connect_timeout=5,
        )
    except pymysql.err.OperationalError as exc:
        if exc.args and exc.args[0] in (1044, 1045, 1698):  # access denied
            raise AuthFailed(str(exc)) from exc
        raise
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
    finally:
        conn.close()


def probe_postgres() -> None:
    import psycopg

    try:
        conn = psycopg.connect(
            host=_env("CHARIOT_POSTGRES__HOST", "127.0.0.1"),
            port=int(_env("CHARIOT_POSTGRES__PORT", "5432")),
            user=_env("CHARIOT_POSTGRES__USER"),
            password=_env("CHARIOT_POSTGRES__PASSWORD"),
            dbname=_env("CHARIOT_POSTGRES__DATABASE"),
            connect_timeout=5,
        )
    except psycopg.OperationalError as exc:
        if "password authentication failed" in str(exc) or "no pg_hba.conf entry" in str(exc):
            raise AuthFailed(str(exc)) from exc
        raise
    with conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def probe_neo4j() -> None:
    from neo4j import GraphDatabase
    from neo4j.exceptions import AuthError

    uri = _env("CHARIOT_NEO4J__URI", "bolt://127.0.0.1:7687")
    auth = (_env("CHARIOT_NEO4J__USER", "neo4j"), _env("CHARIOT_NEO4J__PASSWORD"))
    try:
        database = _env("CHARIOT_NEO4J__DATABASE", "neo4j")
        with (
            GraphDatabase.driver(uri, auth=auth, connection_timeout=5) as driver,
            driver.session(database=database) as session,
        ):
            assert session.run("RETURN 1 AS one").single()["one"] == 1
    except AuthError as exc:
        raise AuthFailed(str(exc)) from exc


PROBES = {"mariadb": probe_mariadb, "postgres": probe_postgres, "neo4j": probe_neo4j}
DRIVERS = {"mariadb": "pymysql", "postgres": "psycopg", "neo4j": "neo4j"}


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=sorted(PROBES))
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--pid", type=int, default=None, help="give up early if it exits")
    args = parser.parse_args()

    try:
        __import__(DRIVERS[args.server])
    except ImportError:
        print(f"wait_ready: python driver {DRIVERS[args.server]} not installed", file=sys.stderr)
        return 3

    if args.server == "neo4j":
        # Silence the driver's "connection refused" chatter while the server boots.
        import logging

        logging.getLogger("neo4j").setLevel(logging.CRITICAL)

    deadline = time.monotonic() + args.timeout
    last: Exception | None = None
    while True:
        try:
            PROBES[args.server]()
            return 0
        except AuthFailed as exc:
            print(f"wait_ready: {args.server}: authentication refused: {exc}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = exc
        if not _alive(args.pid):
            print(f"wait_ready: {args.server}: server process {args.pid} exited", file=sys.stderr)
            return 1
        if time.monotonic() >= deadline:
            print(
                f"wait_ready: {args.server}: no answer after {args.timeout:.0f}s: {last!r}",
                file=sys.stderr,
            )
            return 1
        time.sleep(1.0)


if __name__ == "__main__":
    sys.exit(main())
