"""`chariot status` (and `seed`) against real servers: counts after a seed, unreachable
servers, wrong passwords, and no password in any output."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from chariot.config import Settings
from chariot.errors import ConnectionFailed
from chariot.seed import seed_movielens

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "Wr0ng-Secret-123"
MOVIELENS_COUNTS = {"movies": 9_742, "links": 9_742, "ratings": 100_836, "tags": 3_683}
SERVER_WORDS = {"mysql": "MySQL", "postgres": "PostgreSQL", "neo4j": "Neo4j"}


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def with_server(settings: Settings, server: str, **changes: Any) -> Settings:
    section = getattr(settings, server).model_copy(update=changes)
    return settings.model_copy(update={server: section})


def unreachable(settings: Settings, server: str) -> Settings:
    if server == "neo4j":
        return with_server(settings, server, uri=f"bolt://127.0.0.1:{closed_port()}")
    return with_server(settings, server, port=closed_port())


def passwords(settings: Settings) -> list[str]:
    return [
        getattr(settings, s).password.get_secret_value() for s in ("mysql", "postgres", "neo4j")
    ]


def assert_no_secret(result: Any, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout
        assert secret not in result.stderr


# -- after a seed -------------------------------------------------------------------------


def test_status_json_after_seed_with_empty_sinks(
    cli: Any, settings: Settings, movielens_dir: Path
) -> None:
    seed_movielens(settings.mysql, movielens_dir)
    result = cli("status", "--json", settings=settings)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    endpoints = {endpoint["name"]: endpoint for endpoint in report["endpoints"]}
    assert list(endpoints) == ["mysql", "postgres", "neo4j"]
    mysql, postgres, neo4j = endpoints["mysql"], endpoints["postgres"], endpoints["neo4j"]
    assert mysql["reachable"] and mysql["role"] == "source" and mysql["error"] is None
    assert mysql["row_counts"] == MOVIELENS_COUNTS
    assert "MariaDB" in mysql["version"] or "MySQL" in mysql["version"]
    assert postgres["reachable"] and postgres["row_counts"] == dict.fromkeys(
        MOVIELENS_COUNTS
    )  # no tables
    assert neo4j["reachable"] and neo4j["row_counts"] == dict.fromkeys(
        MOVIELENS_COUNTS, 0
    )  # empty graph
    assert "***" in mysql["address"]
    assert_no_secret(result, *passwords(settings))


def test_status_table_after_seed(cli: Any, sql_settings: Settings, movielens_dir: Path) -> None:
    seed_movielens(sql_settings.mysql, movielens_dir)
    result = cli("status", settings=sql_settings)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    mysql_row = next(line for line in lines if "mysql" in line and "source" in line)
    assert "up" in mysql_row
    # Rows per table: one row per table, the source's count first.
    for table, count in (("movies", "9,742"), ("ratings", "100,836"), ("tags", "3,683")):
        row = next(line for line in lines if line.startswith(f"│ {table} "))
        assert row.split("│")[2].strip() == count
    assert_no_secret(result, *passwords(sql_settings))


def test_status_before_any_seed_shows_absent_tables(cli: Any, sql_settings: Settings) -> None:
    result = cli("status", "--json", settings=sql_settings)
    assert result.exit_code == 0, result.output
    mysql = json.loads(result.stdout)["endpoints"][0]
    assert mysql["row_counts"] == dict.fromkeys(MOVIELENS_COUNTS)


# -- unreachable servers -----------------------------------------------------------------


@pytest.mark.parametrize("server", ["mysql", "postgres", "neo4j"])
def test_an_unreachable_server_is_a_row_and_exit_3(
    cli: Any, sql_settings: Settings, server: str
) -> None:
    broken = unreachable(sql_settings, server)
    result = cli("status", settings=broken)
    assert result.exit_code == ConnectionFailed.exit_code
    assert "Traceback" not in result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith(f"│ {server} "))
    assert "down" in row
    others = [name for name in ("mysql", "postgres", "neo4j") if name != server]
    for other in others:  # the others are still probed and reported
        other_row = next(
            line for line in result.stdout.splitlines() if line.startswith(f"│ {other} ")
        )
        assert "up" in other_row
    assert f"{SERVER_WORDS[server]}" in result.stdout


@pytest.mark.parametrize("server", ["mysql", "postgres", "neo4j"])
def test_an_unreachable_server_in_json(cli: Any, sql_settings: Settings, server: str) -> None:
    result = cli("status", "--json", settings=unreachable(sql_settings, server))
    assert result.exit_code == ConnectionFailed.exit_code
    endpoints = {e["name"]: e for e in json.loads(result.stdout)["endpoints"]}
    assert endpoints[server]["reachable"] is False
    assert SERVER_WORDS[server] in endpoints[server]["error"]
    assert all(endpoints[name]["reachable"] for name in endpoints if name != server)


@pytest.mark.parametrize("server", ["postgres", "neo4j"])
def test_a_down_sink_is_reported_once(cli: Any, sql_settings: Settings, server: str) -> None:
    result = cli("status", settings=unreachable(sql_settings, server))
    assert result.exit_code == ConnectionFailed.exit_code
    assert result.stdout.count(f"{SERVER_WORDS[server]} sink at") == 1, result.stdout


def test_with_postgres_down_the_last_audit_is_unknown_not_none(
    cli: Any, sql_settings: Settings
) -> None:
    broken = unreachable(sql_settings, "postgres")
    text = cli("status", settings=broken)
    assert "none yet" not in text.stdout
    assert "Last audit: unknown" in text.stdout, text.stdout
    report = json.loads(cli("status", "--json", settings=broken).stdout)
    assert report["last_audit"] is None
    assert "last_audit" in report["unavailable"]
    assert "aggregation_runs" in report["unavailable"]


def test_without_any_audit_the_last_audit_is_none_yet(cli: Any, sql_settings: Settings) -> None:
    result = cli("status", settings=sql_settings)
    assert "Last audit: none yet" in result.stdout
    assert json.loads(cli("status", "--json", settings=sql_settings).stdout)["unavailable"] == {}


def test_seed_with_the_source_unreachable_is_one_error_and_exit_3(
    cli: Any, sql_settings: Settings, movielens_dir: Path
) -> None:
    result = cli(
        "seed",
        "movielens",
        "--dir",
        str(movielens_dir),
        settings=unreachable(sql_settings, "mysql"),
    )
    assert result.exit_code == ConnectionFailed.exit_code
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "MySQL source" in errors[0]


# -- wrong passwords ---------------------------------------------------------------------


@pytest.mark.parametrize("server", ["mysql", "postgres"])
@pytest.mark.parametrize("as_json", [False, True])
def test_a_wrong_sql_password_names_the_server_and_never_shows_it(
    cli: Any, sql_settings: Settings, server: str, as_json: bool
) -> None:
    broken = with_server(sql_settings, server, password=SecretStr(WRONG_PASSWORD))
    result = cli("status", *(["--json"] if as_json else []), settings=broken)
    assert result.exit_code == ConnectionFailed.exit_code
    assert "Traceback" not in result.output
    assert_no_secret(result, WRONG_PASSWORD)
    if as_json:
        endpoint = next(e for e in json.loads(result.stdout)["endpoints"] if e["name"] == server)
        assert endpoint["reachable"] is False and SERVER_WORDS[server] in endpoint["error"]
    else:
        assert f"{server}: {SERVER_WORDS[server]}" in result.stdout


def test_a_wrong_neo4j_password_names_the_server_and_never_shows_it(
    cli: Any, settings: Settings
) -> None:
    """One run only, holding the graph lock: Neo4j locks an account after repeated failures."""
    broken = with_server(settings, "neo4j", password=SecretStr(WRONG_PASSWORD))
    result = cli("status", "--json", settings=broken)
    assert result.exit_code == ConnectionFailed.exit_code
    assert "Traceback" not in result.output
    assert_no_secret(result, WRONG_PASSWORD)
    endpoint = next(e for e in json.loads(result.stdout)["endpoints"] if e["name"] == "neo4j")
    assert endpoint["reachable"] is False and "Neo4j sink" in endpoint["error"]


@pytest.mark.parametrize("as_json", [False, True])
def test_seed_with_a_wrong_mysql_password(
    cli: Any, sql_settings: Settings, movielens_dir: Path, as_json: bool
) -> None:
    broken = with_server(sql_settings, "mysql", password=SecretStr(WRONG_PASSWORD))
    args = ["seed", "movielens", "--dir", str(movielens_dir), *(["--json"] if as_json else [])]
    result = cli(*args, settings=broken)
    assert result.exit_code == ConnectionFailed.exit_code
    assert "Traceback" not in result.output
    assert_no_secret(result, WRONG_PASSWORD)
    if as_json:
        error = json.loads(result.stdout)["error"]
        assert "MySQL source" in error["message"] and error["exit_code"] == 3
    else:
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and "MySQL source" in errors[0]
        assert (
            "CHARIOT_MYSQL__PASSWORD" in result.output
        )  # the hint names the setting, not its value


def test_seed_only_needs_the_source(cli: Any, sql_settings: Settings) -> None:
    """A wrong sink password does not matter to a seed: it touches MySQL only."""
    broken = with_server(sql_settings, "postgres", password=SecretStr(WRONG_PASSWORD))
    result = cli("seed", "synthetic", "--ratings", "2000", "--json", settings=broken)
    assert result.exit_code == 0, result.output
    assert_no_secret(result, WRONG_PASSWORD)


# -- no password anywhere ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "--json"),
        ("seed", "synthetic", "--ratings", "1000"),
        ("seed", "synthetic", "--ratings", "1000", "--json"),
        ("--debug", "status", "--json"),
    ],
    ids=" ".join,
)
def test_no_password_in_any_output(cli: Any, sql_settings: Settings, args: tuple[str, ...]) -> None:
    result = cli(*args, settings=sql_settings)
    assert result.exit_code == 0, result.output
    assert_no_secret(result, *passwords(sql_settings))
