"""What every command shares: settings from the global options, one error path, rendering."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console

from chariot.config import Settings, load_settings, unknown_settings
from chariot.errors import ChariotError, ConfigError
from chariot.exit_codes import ExitCode
from chariot.keys import json_ready
from chariot.redaction import redact

if TYPE_CHECKING:
    from chariot.project.model import Project
    from chariot.streams import Stream


def _console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Piped into a file or a pager, rich assumes 80 columns and cuts table cells ("movi…");
    # a terminal's own width, or $COLUMNS, still rules.
    piped = not stream.isatty() and not os.environ.get("COLUMNS")
    return Console(stderr=stderr, width=PIPED_WIDTH if piped else None)


PIPED_WIDTH = 200
console = _console()
err_console = _console(stderr=True)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON on stdout instead of a table.")
]
WaitOption = Annotated[
    float | None,
    typer.Option(
        "--wait",
        min=0,
        max=86_400,
        metavar="SECONDS",
        help="Wait up to SECONDS for another command's writer lease on the same tables "
        "(default: exit 9 at once, having changed nothing).",
    ),
]


@dataclass
class GlobalOptions:
    """Options given before the command (``chariot --env-file X sync``)."""

    env_file: Path | None = None
    project: Path | None = None
    debug: bool = False
    verbosity: int = 0
    log_format: str = "text"


def global_options(ctx: typer.Context) -> GlobalOptions:
    root = ctx.find_root()
    if not isinstance(root.obj, GlobalOptions):
        root.obj = GlobalOptions()
    return root.obj


def project_from(ctx: typer.Context) -> Project:
    """The project file: ``--project``, else ``$CHARIOT_PROJECT``, else ./chariot.toml."""
    from chariot.project.loading import load_project

    return load_project(global_options(ctx).project)


def project_file_exists(ctx: typer.Context) -> bool:
    from chariot.project.loading import project_path

    return project_path(global_options(ctx).project).exists()


def project_streams_from(ctx: typer.Context) -> tuple[Stream, ...]:
    from chariot.project.streams import project_streams

    return project_streams(project_from(ctx))


def settings_from(ctx: typer.Context, **run_overrides: Any) -> Settings:
    """Load settings once per invocation; command options override the ``run`` section."""
    options = global_options(ctx)
    settings = load_settings(options.env_file)
    if options.verbosity >= 0:  # -q: errors only
        for unknown in unknown_settings(options.env_file):
            err_console.print(
                f"[yellow]Warning:[/] {_escape(unknown.message())}", highlight=False, soft_wrap=True
            )
    overrides = {key: value for key, value in run_overrides.items() if value is not None}
    if overrides:
        # Validate the merged values so an option like --batch-size 0 fails exactly like the
        # environment variable would: one line naming the setting.
        try:
            # Only what was set, so that a setting left at its default stays unset (a sink's
            # own batch size defers to a run batch size that was given: ``sink_batch_size``).
            given = settings.run.model_dump(exclude_unset=True)
            run = type(settings.run).model_validate({**given, **overrides})
        except ValidationError as error:
            first = error.errors()[0]
            option = "--" + str(first["loc"][0]).replace("_", "-")
            raise ConfigError(f"invalid {option}: {first['msg']}") from None
        settings = settings.model_copy(update={"run": run})
    return settings


def fail(
    message: str,
    *,
    exit_code: ExitCode = ExitCode.INTERNAL,
    hint: str | None = None,
    as_json: bool = False,
) -> NoReturn:
    """Print one error line and a hint (or the JSON error object) and exit with the code."""
    message, hint = redact(message), redact(hint) if hint else None
    if as_json:
        error = {"exit_code": int(exit_code), "kind": exit_code.kind, "message": message}
        print_json({"ok": False, "error": {**error, "hint": hint}})
    else:
        err_console.print(
            f"[bold red]Error:[/] {_escape(message)}", highlight=False, soft_wrap=True
        )
        if hint:
            err_console.print(f"[dim]Hint: {_escape(hint)}[/]", highlight=False, soft_wrap=True)
    raise typer.Exit(int(exit_code))


@contextmanager
def reported_errors(ctx: typer.Context, *, as_json: bool = False) -> Iterator[None]:
    """Turn every error into one clear line and its documented exit code.

    ``--debug`` adds the traceback on stderr; the exit code stays the documented one.
    """
    debug = global_options(ctx).debug
    try:
        yield
    except typer.Exit:
        raise
    except ChariotError as error:
        _traceback(debug)
        fail(str(error), exit_code=error.exit_code, hint=error.hint, as_json=as_json)
    except KeyboardInterrupt:
        _traceback(debug)
        fail(
            "interrupted; re-run the same command to resume",
            exit_code=ExitCode.INTERRUPTED,
            as_json=as_json,
        )
    except Exception as error:  # a bug: still one line, never a bare traceback
        _traceback(debug)
        fail(
            f"internal error: {type(error).__name__}: {error}",
            exit_code=ExitCode.INTERNAL,
            hint="re-run with --debug for the traceback and report it",
            as_json=as_json,
        )


def finish(
    result: BaseModel, *, exit_code: ExitCode, as_json: bool, render: Callable[[], None]
) -> None:
    """Show a command's result (table, or JSON with ``ok`` first) and exit with its code."""
    if as_json:
        print_json({"ok": exit_code == ExitCode.OK, **json_ready(result)})
    else:
        render()
    if exit_code != ExitCode.OK:
        raise typer.Exit(int(exit_code))


def _traceback(debug: bool) -> None:
    """With ``--debug``: the current exception's traceback, its messages redacted.

    Redacted before rendering: once highlighted, a password may be split by colour codes.
    """
    if not debug:
        return
    from rich.traceback import Traceback

    exc_type, exc_value, traceback = sys.exc_info()
    if exc_type is None or exc_value is None:
        return
    trace = Traceback.extract(exc_type, exc_value, traceback)
    _redact_trace(trace)
    err_console.print(Traceback(trace))


def _redact_trace(trace: Any) -> None:
    """Mask secrets in every message of a rich ``Trace`` (causes and exception groups too)."""
    for stack in trace.stacks:
        stack.exc_value = redact(stack.exc_value)
        # notes and exception groups exist in newer rich releases only
        if hasattr(stack, "notes"):
            stack.notes = [redact(note) for note in stack.notes]
        if stack.syntax_error is not None:
            stack.syntax_error.msg = redact(stack.syntax_error.msg)
            stack.syntax_error.line = redact(stack.syntax_error.line)
        for group in getattr(stack, "exceptions", ()):
            _redact_trace(group)


def print_json(result: BaseModel | dict[str, Any] | list[Any]) -> None:
    ready = json_ready(result) if isinstance(result, BaseModel) else result
    text = json.dumps(ready, indent=2, default=str)
    # Plain write: rich would re-wrap long lines and colour numbers, which breaks `jq`.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
