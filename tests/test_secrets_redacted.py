"""No password in any output: malformed and well-formed source URLs through every command,
in text, ``--json``, JSON logs and ``--debug`` (#9 symptom 5); and the pieces that do it."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Settings
from chariot.logs import JsonFormatter, TextFormatter
from chariot.redaction import register_secret

PASSWORD = "Pa55-PASSWORD-42"

MALFORMED_URLS = [
    f"chariot:{PASSWORD}@@127.0.0.1::23306",  # the URL from the issue
    f"mysql+pymysql://chariot:{PASSWORD}@127.0.0.1:notaport/movielens",
    f"mysql+pymysql://chariot:{PASSWORD}@127.0.0.1:3306",  # no database
    f"mysql+pymysql://chariot:{PASSWORD}/@@127.0.0.1/movielens",
]

COMMANDS = [
    ("seed", "movielens", "--dir", "{movielens}"),
    ("sync",),
    ("aggregate",),
    ("audit",),
    ("run",),
    ("status",),
]

# (options before the command, options after it)
MODES = {
    "text": ((), ()),
    "json": ((), ("--json",)),
    "json-logs": (("--log-format", "json", "-v"), ()),
    "debug": (("--debug", "-v"), ()),
}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def assert_no_secret(result: Any, secrets: list[str]) -> None:
    output = result.stdout + result.stderr
    for secret in secrets:
        assert secret not in output, output


def invoke_everywhere(cli: Any, settings: Settings, url: str, movielens: Path) -> None:
    secrets = [PASSWORD] + [
        getattr(settings, name).password.get_secret_value() for name in ("postgres", "neo4j")
    ]
    env = {"CHARIOT_MYSQL__URL": url, "CHARIOT_RUN__SINKS": "postgres"}
    for command in COMMANDS:
        arguments = [part.format(movielens=movielens) for part in command]
        for mode, (before, after) in MODES.items():
            result = cli(*before, *arguments, *after, settings=settings, env=env)
            assert result.exit_code != 0, (command, mode, result.output)
            assert_no_secret(result, secrets)


@pytest.mark.integration
@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_a_malformed_source_url_never_shows_its_password(
    cli: Any, sql_settings: Settings, movielens_dir: Path, url: str
) -> None:
    invoke_everywhere(cli, sql_settings, url, movielens_dir)


@pytest.mark.integration
@pytest.mark.parametrize("where", ["wrong password", "nothing listening"])
def test_a_well_formed_source_url_never_shows_its_password(
    cli: Any, sql_settings: Settings, movielens_dir: Path, where: str
) -> None:
    mysql = sql_settings.mysql
    port = mysql.port if where == "wrong password" else closed_port()
    url = f"mysql+pymysql://{mysql.user}:{PASSWORD}@{mysql.host}:{port}/{mysql.database}"
    invoke_everywhere(cli, sql_settings, url, movielens_dir)


# -- the pieces --------------------------------------------------------------------------


def secret_record(secret: str) -> logging.LogRecord:
    try:
        raise RuntimeError(f"could not parse mysql://u:{secret}@@host::1")
    except RuntimeError:
        exc_info = sys.exc_info()
    return logging.makeLogRecord(
        {
            "name": "chariot.test",
            "levelname": "ERROR",
            "msg": "source %s failed",
            "args": (f"u:{secret}@@h::1",),
            "error": f"bad URL u:{secret}@@h::1 and {secret}",
            "exc_info": exc_info,
        }
    )


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_log_lines_never_show_a_secret(formatter: logging.Formatter) -> None:
    secret = "Log-Secret-77"
    register_secret(secret)
    line = formatter.format(secret_record(secret))
    assert secret not in line
    if isinstance(formatter, JsonFormatter):
        assert "***" in json.loads(line)["message"]


def test_a_debug_traceback_never_shows_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from chariot.cli import common

    secret = "Trace-Secret-88"
    register_secret(secret)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    try:
        try:
            raise ValueError(f"cause with {secret}")
        except ValueError as cause:
            raise RuntimeError(f"mysql://chariot:{secret}@@127.0.0.1::1 is not valid") from cause
    except RuntimeError:
        common._traceback(True)
    shown = stderr.getvalue()
    assert "RuntimeError" in shown and "ValueError" in shown
    assert secret not in shown


def test_settings_register_every_password_even_when_invalid(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from chariot.config import load_settings
    from chariot.errors import ConfigError
    from chariot.redaction import redact

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARIOT_POSTGRES__PASSWORD", "Pg-Secret-11")
    monkeypatch.setenv("CHARIOT_NEO4J__PASSWORD", "Neo-Secret-22")
    monkeypatch.setenv("CHARIOT_MYSQL__URL", "chariot:Url-Secret-33@@127.0.0.1::23306")
    with pytest.raises(ConfigError):
        load_settings()
    for secret in ("Pg-Secret-11", "Neo-Secret-22", "Url-Secret-33"):
        assert secret not in redact(f"a message quoting {secret} alone")
