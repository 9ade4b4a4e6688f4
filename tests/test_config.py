"""Settings: environment, .env, --env-file, nested keys, and errors that name the variable."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from chariot.config import (
    MySQLSettings,
    Neo4jSettings,
    PostgresSettings,
    RunSettings,
    load_settings,
    redact_url,
)
from chariot.errors import ConfigError

SECRET = "Wr0ng-Secret-123"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CHARIOT_* variables from the developer's shell, and a working directory of our own."""
    for key in list(os.environ):
        if key.startswith("CHARIOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


# -- errors through the CLI: one line naming the key, exit 2, no traceback ---------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHARIOT_MYSQL__PORT", "abc"),  # not an int
        ("CHARIOT_POSTGRES__PORT", "70000"),  # out of range
        ("CHARIOT_NEO4J__URI", "http://127.0.0.1:7474"),  # bad URI scheme
        ("CHARIOT_RUN__BATCH_SIZE", "0"),
        ("CHARIOT_POSTGRES__SCHEMA_NAME", "bad-name; drop"),
        ("CHARIOT_MYSQL", "not json"),  # a whole section must be JSON
    ],
)
@pytest.mark.parametrize("command", [("status",), ("seed", "movielens", "--dir", ".")])
def test_a_bad_setting_is_one_line_naming_the_key(
    cli: Any, clean_env: Path, variable: str, value: str, command: tuple[str, ...]
) -> None:
    result = cli(*command, env={variable: value, "CHARIOT_MYSQL__PASSWORD": SECRET})
    assert result.exit_code == 2
    lines = error_lines(result.output)
    assert len(lines) == 1, result.output
    assert variable in lines[0]
    assert "Traceback" not in result.output
    assert SECRET not in result.output


def test_a_bad_setting_as_json(cli: Any, clean_env: Path) -> None:
    result = cli("status", "--json", env={"CHARIOT_MYSQL__PORT": "abc"})
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and payload["error"]["exit_code"] == 2
    assert payload["error"]["kind"] == "usage"
    assert "CHARIOT_MYSQL__PORT" in payload["error"]["message"]


def test_several_bad_settings_are_counted(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARIOT_MYSQL__PORT", "abc")
    monkeypatch.setenv("CHARIOT_RUN__WORKERS", "0")
    with pytest.raises(ConfigError, match=r"\(and 1 more invalid setting\)"):
        load_settings()


def test_a_missing_env_file_is_one_line(cli: Any, clean_env: Path) -> None:
    result = cli("--env-file", str(clean_env / "missing.env"), "status")
    assert result.exit_code == 2
    lines = error_lines(result.output)
    assert len(lines) == 1
    assert "--env-file" in lines[0] and "missing.env" in lines[0]
    assert "Traceback" not in result.output


def test_the_env_file_option_is_read(cli: Any, clean_env: Path) -> None:
    env_file = clean_env / "other.env"
    env_file.write_text("CHARIOT_RUN__BATCH_SIZE=-5\n", encoding="utf-8")
    result = cli("--env-file", str(env_file), "status")
    assert result.exit_code == 2
    assert "CHARIOT_RUN__BATCH_SIZE" in result.output


# -- where values come from ------------------------------------------------------------


def test_dotenv_in_the_working_directory_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text(
        "CHARIOT_POSTGRES__SCHEMA_NAME=from_dotenv\nCHARIOT_MYSQL__PORT=3307\n", encoding="utf-8"
    )
    settings = load_settings()
    assert settings.postgres.schema_name == "from_dotenv"
    assert settings.mysql.port == 3307


def test_an_environment_variable_beats_dotenv(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text("CHARIOT_POSTGRES__SCHEMA_NAME=from_dotenv\n", encoding="utf-8")
    monkeypatch.setenv("CHARIOT_POSTGRES__SCHEMA_NAME", "from_env")
    assert load_settings().postgres.schema_name == "from_env"


def test_an_explicit_env_file_replaces_dotenv(clean_env: Path) -> None:
    (clean_env / ".env").write_text("CHARIOT_RUN__WORKERS=3\n", encoding="utf-8")
    other = clean_env / "prod.env"
    other.write_text("CHARIOT_RUN__WORKERS=5\n", encoding="utf-8")
    assert load_settings(other).run.workers == 5


def test_nested_keys_use_double_underscores(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARIOT_RUN__WORKERS", "7")
    monkeypatch.setenv("CHARIOT_MYSQL__HOST", "db.example")
    monkeypatch.setenv("CHARIOT_NEO4J__URI", "neo4j+s://graph.example:7687")
    monkeypatch.setenv("CHARIOT_RUN__SINKS", "postgres, neo4j")
    settings = load_settings()
    assert settings.run.workers == 7
    assert settings.mysql.host == "db.example"
    assert settings.neo4j.uri == "neo4j+s://graph.example:7687"
    assert settings.run.sinks == ["postgres", "neo4j"]


def test_defaults_without_any_configuration(clean_env: Path) -> None:
    settings = load_settings()
    assert settings.mysql.port == 3306 and settings.postgres.schema_name == "chariot"
    assert settings.run.sinks == ["postgres", "neo4j"]


def test_the_example_env_file_is_valid(clean_env: Path) -> None:
    example = Path(__file__).resolve().parents[1] / ".env.example"
    settings = load_settings(example)
    assert settings.run.sinks == ["postgres", "neo4j"]
    assert settings.neo4j.uri.startswith("bolt://")


# -- secrets ----------------------------------------------------------------------------

passwords = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="*"),
    min_size=6,
    max_size=24,
).map(lambda text: "Pw" + text)


@given(passwords)
def test_display_urls_never_show_the_password(password: str) -> None:
    secret = SecretStr(password)
    mysql = MySQLSettings(password=secret)
    postgres = PostgresSettings(password=secret)
    neo4j = Neo4jSettings(password=secret)
    for shown in (
        mysql.display_url(),
        postgres.display_url(),
        neo4j.display_url(),
        repr(mysql),
        str(postgres),
    ):
        assert password not in shown
    assert password not in redact_url(mysql.sqlalchemy_url())
    assert "***" in redact_url(mysql.sqlalchemy_url())


def test_redact_url_leaves_urls_without_password_alone() -> None:
    assert redact_url("sqlite:///data.db") == "sqlite:///data.db"
    assert (
        redact_url("postgresql://user:s3cret@host:5432/db") == "postgresql://user:***@host:5432/db"
    )


# -- undecodable files, misspelt names, non-finite numbers (#9 symptom 9) ----------------


@pytest.mark.parametrize("explicit", [False, True], ids=["./.env", "--env-file"])
def test_an_env_file_that_is_not_utf8_is_one_line_naming_it(
    cli: Any, clean_env: Path, explicit: bool
) -> None:
    env_file = clean_env / ("latin1.env" if explicit else ".env")
    env_file.write_bytes(b"CHARIOT_POSTGRES__SCHEMA_NAME=caf\xe9\n")
    options = ("--env-file", str(env_file)) if explicit else ()
    result = cli(*options, "status")
    assert result.exit_code == 2, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1, result.output
    assert env_file.name in lines[0] and "UTF-8" in lines[0]
    assert "Traceback" not in result.output


FLOAT_SETTINGS = [
    f"CHARIOT_{section.upper()}__{name.upper()}"
    for section, model in (
        ("mysql", MySQLSettings),
        ("postgres", PostgresSettings),
        ("neo4j", Neo4jSettings),
        ("run", RunSettings),
    )
    for name, info in model.model_fields.items()
    if info.annotation is float
]


def test_there_are_float_settings_to_check() -> None:
    assert "CHARIOT_RUN__LEASE_WAIT_SECONDS" in FLOAT_SETTINGS


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity", "NaN"])
@pytest.mark.parametrize("variable", FLOAT_SETTINGS)
def test_a_non_finite_number_is_refused(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


def test_a_non_finite_number_through_the_cli_is_one_line(cli: Any, clean_env: Path) -> None:
    result = cli("status", env={"CHARIOT_RUN__LEASE_WAIT_SECONDS": "inf"})
    assert result.exit_code == 2, result.output
    lines = error_lines(result.output)
    assert len(lines) == 1 and "CHARIOT_RUN__LEASE_WAIT_SECONDS" in lines[0]


DOCUMENTED_NAMES = [
    "CHARIOT_PROJECT",
    "CHARIOT_ENV_FILE",
    "CHARIOT_MOVIELENS_DIR",
    "CHARIOT_REQUIRE_SERVICES",
    "CHARIOT_SERVICES_DIR",
    "CHARIOT_SERVICES_PYTHON",
    "CHARIOT_JAVA",
    "CHARIOT_CSV_SINK_DIR",
    "CHARIOT_BENCH_NAME",
]


@pytest.mark.parametrize(
    ("misspelt", "meant"),
    [
        ("CHARIOT_RUN__BATCHSIZE", "CHARIOT_RUN__BATCH_SIZE"),
        ("CHARIOT_RUN_BATCH_SIZE", "CHARIOT_RUN__BATCH_SIZE"),
        ("CHARIOT_POSTGRES__SCHEMA", "CHARIOT_POSTGRES__SCHEMA_NAME"),
        ("chariot_mysql__passwd", "CHARIOT_MYSQL__PASSWORD"),
        ("CHARIOT_NEO4J__URL", "CHARIOT_NEO4J__URI"),
    ],
)
@pytest.mark.parametrize("where", ["environment", ".env"])
def test_a_misspelt_setting_is_found_with_its_likely_name(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, misspelt: str, meant: str, where: str
) -> None:
    from chariot.config import unknown_settings

    if where == "environment":
        monkeypatch.setenv(misspelt, "5")
    else:
        (clean_env / ".env").write_text(f"{misspelt}=5\n", encoding="utf-8")
    found = unknown_settings()
    assert [(item.name, item.suggestion) for item in found] == [(misspelt.upper(), meant)]
    assert found[0].origin == ("environment" if where == "environment" else ".env")


def test_known_and_documented_names_are_not_reported(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chariot.config import unknown_settings

    for name in DOCUMENTED_NAMES:
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("CHARIOT_RUN__BATCH_SIZE", "5")
    monkeypatch.setenv("chariot_run__workers", "2")  # settings are case-insensitive
    monkeypatch.setenv("CHARIOT_MYSQL", "{}")
    assert unknown_settings() == []


@pytest.mark.integration
def test_the_cli_warns_about_a_misspelt_setting_and_carries_on(cli: Any, sql_settings: Any) -> None:
    result = cli("status", "--json", settings=sql_settings, env={"CHARIOT_RUN__BATCHSIZE": "5"})
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # stdout stays the result alone
    warnings = [line for line in result.stderr.splitlines() if "CHARIOT_RUN__BATCHSIZE" in line]
    assert len(warnings) == 1, result.stderr
    assert "CHARIOT_RUN__BATCH_SIZE" in warnings[0]
