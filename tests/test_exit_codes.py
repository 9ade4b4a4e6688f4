"""Exit codes as documented, everywhere: servers down, `--debug`, a bare `chariot`, and the
JSON error shape every command shares."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chariot.config import Settings
from chariot.exit_codes import ExitCode
from tests.test_status_cli import unreachable

SERVERS = ("mysql", "postgres", "neo4j")


def _all_down(settings: Settings) -> Settings:
    for server in SERVERS:
        settings = unreachable(settings, server)
    return settings


def test_the_table_has_one_stable_kind_and_meaning_per_code() -> None:
    rows = ExitCode.table()
    assert len({code for code, _, _ in rows}) == len(rows)
    assert len({kind for _, kind, _ in rows}) == len(rows)
    assert all(meaning.strip() for _, _, meaning in rows)
    assert ExitCode.BUSY.kind == "busy" and ExitCode.OK == 0


def test_bare_chariot_shows_the_help_and_succeeds(cli: Any) -> None:
    result = cli()
    assert result.exit_code == 0
    assert "Usage:" in result.stdout and "sync" in result.stdout


def test_debug_adds_the_traceback_but_keeps_the_documented_code(cli: Any) -> None:
    plain = cli("status", env={"CHARIOT_MYSQL__PORT": "abc"})
    debug = cli("--debug", "status", env={"CHARIOT_MYSQL__PORT": "abc"})
    assert plain.exit_code == debug.exit_code == ExitCode.USAGE
    assert "Traceback" not in plain.output
    assert "Traceback" in debug.output and "CHARIOT_MYSQL__PORT" in debug.output


def test_sigterm_ends_a_command_like_ctrl_c(tmp_path: Any) -> None:
    """A scheduler's SIGTERM: one line and exit 130, not death by signal."""
    import os
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import os, signal, sys
        import chariot.status as status_library  # the command imports it when it runs
        from chariot.cli.app import main
        def stop(settings, streams):  # the command is under way when the scheduler stops it
            os.kill(os.getpid(), signal.SIGTERM)
        status_library.collect_status = stop
        sys.argv = ["chariot", "status"]
        main()
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARIOT_")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == ExitCode.INTERRUPTED, done.stderr
    assert "interrupted" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.integration
@pytest.mark.parametrize(
    "args",
    [
        ("sync",),
        ("sync", "--full-refresh"),
        ("run",),
        ("aggregate",),
        ("audit",),
        ("status",),
    ],
    ids=" ".join,
)
def test_every_command_with_the_servers_down_exits_3(
    cli: Any, sql_settings: Settings, args: tuple[str, ...]
) -> None:
    result = cli(*args, settings=_all_down(sql_settings))
    assert result.exit_code == ExitCode.CONNECTION, result.output
    assert "Traceback" not in result.output
    assert "finished" not in result.stderr  # no false "the other sinks finished" hint
    as_json = cli(*args, "--json", settings=_all_down(sql_settings))
    assert as_json.exit_code == ExitCode.CONNECTION
    payload = json.loads(as_json.stdout)
    assert payload["ok"] is False


@pytest.mark.integration
def test_a_source_that_is_down_is_a_connection_error_for_sync(
    cli: Any, sql_settings: Settings
) -> None:
    result = cli("sync", "--sink", "postgres", settings=unreachable(sql_settings, "mysql"))
    assert result.exit_code == ExitCode.CONNECTION, result.output
    assert "MySQL" in result.stderr or "mysql" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sync", "--json", "--bogus"], "No such option: --bogus"),
        (["sync", "--batch-size", "x", "--json"], "Invalid value for '--batch-size'"),
    ],
)
def test_a_usage_error_under_json_is_the_json_error_object(args: list[str], message: str) -> None:
    """Scripts parse stdout of --json: a usage error must not leave it empty."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "chariot", *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == ExitCode.USAGE, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["kind"] == "usage" and message in error["message"]
    assert error["hint"] == "see 'chariot sync --help'"
    assert "Traceback" not in done.stderr
