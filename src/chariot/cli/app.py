"""Wires the commands into one Typer app, in the order a user needs them."""

from __future__ import annotations

import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from chariot.cli.lean_imports import skip_neo4j_dataframe_support, start_up_collection_paused

# Every command imports the same ~0.4 s of modules first (Typer, rich, pydantic, the sync
# library); the garbage collector would walk them again and again meanwhile (lean_imports).
with start_up_collection_paused():
    import typer
    from typer.core import TyperGroup

    from chariot import __version__
    from chariot.cli import aggregate as aggregate_command
    from chariot.cli import audit as audit_command
    from chariot.cli import init as init_command
    from chariot.cli import run as run_command
    from chariot.cli import seed as seed_command
    from chariot.cli import status as status_command
    from chariot.cli import sync as sync_command
    from chariot.cli.common import GlobalOptions, fail
    from chariot.exit_codes import ExitCode
    from chariot.logs import configure_logging


class LogFormat(StrEnum):
    text = "text"
    json = "json"


# Help lists commands in the order a user needs them. Typer would put sub-apps (`seed`)
# after all plain commands, whatever the order of registration below.
COMMAND_ORDER = ("init", "seed", "sync", "aggregate", "audit", "run", "status")


class _OrderedGroup(TyperGroup):
    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        rank = {name: position for position, name in enumerate(COMMAND_ORDER)}
        return sorted(self.commands, key=lambda name: rank.get(name, len(rank)))


app = typer.Typer(
    name="chariot",
    cls=_OrderedGroup,
    help="Keep an analytics PostgreSQL and a Neo4j graph exactly in step with a MySQL source.",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _show_version(ctx: typer.Context, value: bool) -> None:
    """``--version``; with ``-v`` before it, also the drivers' and reachable servers' versions.

    Eager, like ``-v`` and ``--env-file``: those given before ``--version`` are already parsed.
    """
    if not value:
        return
    typer.echo(f"chariot {__version__}")
    if ctx.params.get("verbose"):
        for line in _versions_of_what_chariot_talks_to(ctx.params.get("env_file")):
            typer.echo(line)
    raise typer.Exit()


def _versions_of_what_chariot_talks_to(env_file: Path | None) -> list[str]:
    import platform

    from chariot.config import load_settings
    from chariot.errors import ChariotError
    from chariot.status import driver_versions, server_versions

    lines = [f"python {platform.python_version()}"]
    for name, version in driver_versions().items():
        lines.append(f"driver {name} {version or 'not installed'}")
    try:
        servers = server_versions(load_settings(env_file), timeout=3.0)
    except ChariotError:  # unusable settings: no servers to ask, and no error for --version
        servers = {}
    lines += [f"server {name} {version}" for name, version in servers.items()]
    return lines


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            help="Read settings from this file instead of ./.env.",
            envvar="CHARIOT_ENV_FILE",
            is_eager=True,  # seen by `--version` when given before it
        ),
    ] = None,
    project: Annotated[
        Path | None,
        typer.Option(
            "--project",
            help="The project file (or a folder holding chariot.toml). Default: ./chariot.toml.",
            envvar="CHARIOT_PROJECT",
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback on errors.")
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            is_eager=True,  # `chariot -v --version` names drivers and servers too
            help="More log output (repeatable).",
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            "--log-format", help="Log lines on stderr as 'text' or 'json' (one object per line)."
        ),
    ] = LogFormat.text,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Show the version and exit (after -v: also the drivers' and servers').",
            callback=_show_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Keep an analytics PostgreSQL and a Neo4j graph exactly in step with a MySQL source."""
    verbosity = -1 if quiet else verbose
    ctx.obj = GlobalOptions(
        env_file=env_file,
        project=project,
        debug=debug,
        verbosity=verbosity,
        log_format=log_format.value,
    )
    configure_logging(verbosity=verbosity, log_format=log_format.value)
    if ctx.invoked_subcommand is None:  # bare `chariot`: the help, and success
        typer.echo(ctx.get_help())
        raise typer.Exit(ExitCode.OK)


init_command.register(app)
seed_command.register(app)
sync_command.register(app)
aggregate_command.register(app)
audit_command.register(app)
run_command.register(app)
status_command.register(app)


def main() -> None:
    # SIGTERM (a scheduler stopping the job) ends a command like Ctrl-C: one line, exit 130,
    # and every command resumes where it stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    skip_neo4j_dataframe_support()
    if "--json" in sys.argv[1:]:
        sys.exit(_main_with_json_usage_errors())
    app()


def _main_with_json_usage_errors() -> int:
    """Like ``app()``, but a usage error (an unknown option, a bad value) is the JSON error
    object on stdout too: a script reading ``--json`` output must never get nothing."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="chariot", standalone_mode=False)
    except typer.Abort:
        return _json_failure("interrupted", ExitCode.INTERRUPTED, None)
    except typer.TyperException as error:  # Typer's own click: a usage error, a bad value
        context = getattr(error, "ctx", None)
        path = context.command_path if context is not None else "chariot"
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        return _json_failure(message, ExitCode.USAGE, f"see '{path} --help'")
    return code if isinstance(code, int) else ExitCode.OK


def _json_failure(message: str, code: ExitCode, hint: str | None) -> int:
    try:
        fail(message, exit_code=code, hint=hint, as_json=True)
    except typer.Exit as done:
        return done.exit_code


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
