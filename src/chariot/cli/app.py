"""Wires the commands into one Typer app, in the order a user needs them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chariot import __version__
from chariot.cli import status as status_command
from chariot.cli.common import GlobalOptions

app = typer.Typer(
    name="chariot",
    help="Keep an analytics PostgreSQL and a Neo4j graph exactly in step with a MySQL source.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"chariot {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    env_file: Annotated[
        Path | None,
        typer.Option("--env-file", help="Read settings from this file instead of ./.env.", envvar="CHARIOT_ENV_FILE"),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (repeatable).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    log_format: Annotated[
        str, typer.Option("--log-format", help="Log lines on stderr as 'text' or 'json' (one object per line).")
    ] = "text",
    version: Annotated[
        bool, typer.Option("--version", help="Show the version and exit.", callback=_show_version, is_eager=True)
    ] = False,
) -> None:
    """Keep an analytics PostgreSQL and a Neo4j graph exactly in step with a MySQL source."""
    ctx.obj = GlobalOptions(
        env_file=env_file, debug=debug, verbosity=-1 if quiet else verbose, log_format=log_format
    )


status_command.register(app)


def main() -> None:
    app()
