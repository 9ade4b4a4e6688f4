"""The command line as a whole: version, help on every command, `python -m chariot`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main

from chariot import __version__
from chariot.cli.app import app

# The order a user needs the commands in (cli/app.py registers them so).
COMMAND_ORDER = ["seed", "sync", "aggregate", "audit", "run", "status"]


def command_paths(
    command: Any, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group, depth first (Typer may bundle its own Click: duck typing)."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*path, name))


ALL_COMMANDS = list(command_paths(typer.main.get_command(app)))


def test_version(cli: Any) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"chariot {__version__}"


@pytest.mark.parametrize(
    "path", [path for path, _ in ALL_COMMANDS], ids=lambda p: " ".join(p) or "chariot"
)
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_every_command_has_help(cli: Any, path: tuple[str, ...], flag: str) -> None:
    result = cli(*path, flag)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("path", "command"), ALL_COMMANDS, ids=lambda p: " ".join(p) if isinstance(p, tuple) else ""
)
def test_every_command_and_option_is_documented(path: tuple[str, ...], command: Any) -> None:
    assert (command.help or "").strip(), f"`chariot {' '.join(path)}` has no help text"
    for parameter in command.params:
        if getattr(parameter, "param_type_name", "") == "option" and "--help" not in parameter.opts:
            assert (parameter.help or "").strip(), (
                f"`chariot {' '.join(path)} {parameter.opts[0]}` has no help"
            )


def test_seed_has_its_two_subcommands() -> None:
    seed = dict(ALL_COMMANDS)[("seed",)]
    assert sorted(seed.commands) == ["movielens", "synthetic"]


def test_commands_are_listed_in_the_order_a_user_needs_them() -> None:
    root: Any = typer.main.get_command(app)
    listed = root.list_commands(typer.Context(root))  # the order `chariot --help` shows
    registered = [name for name in listed if name in COMMAND_ORDER]
    assert registered == [name for name in COMMAND_ORDER if name in registered]
    assert {"seed", "status"} <= set(registered)


def test_unknown_command_is_a_usage_error(cli: Any) -> None:
    result = cli("no-such-command")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_missing_required_option_is_a_usage_error(cli: Any) -> None:
    result = cli("seed", "synthetic")
    assert result.exit_code == 2
    assert "--ratings" in result.output


def test_python_dash_m_chariot_help() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHARIOT_")}
    completed = subprocess.run(
        [sys.executable, "-m", "chariot", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Usage:" in completed.stdout
    assert "seed" in completed.stdout and "status" in completed.stdout
    assert completed.stderr == ""


@pytest.mark.parametrize(
    ("module", "heavy"),
    [
        ("chariot.cli.app", ("pymysql", "psycopg", "neo4j")),
        ("chariot.cli.seed", ("pymysql", "numpy", "pandas")),
    ],
)
def test_help_does_not_import_drivers(module: str, heavy: tuple[str, ...]) -> None:
    """`chariot --help` must stay instant: drivers (and the generator's numpy) load on use."""
    code = f"import sys, {module}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == ""
