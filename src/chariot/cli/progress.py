"""The one progress display of every long command: a line per task on stderr.

Fed by the library's ``ProgressCallback`` (from any thread). Each line shows the task, a
bar, done/total, the rate in the task's unit (rows/s, ...) and, while the total is known,
an ETA. Shown only on a terminal, and never with ``-q`` or ``--json``: stdout stays the
result's alone and a log or a pipe never fills with redraws.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich import filesize
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, ProgressColumn, Task, TaskID, TextColumn
from rich.progress import Progress as Bars
from rich.table import Column
from rich.text import Text

from chariot.cli.common import err_console, global_options
from chariot.progress import Progress, ProgressCallback

# Steps of very different lengths: a rate or an ETA from them would mislead.
UNEVEN_UNITS = frozenset({"stages", "checks"})

# Where the display draws; tests put a ``Console(force_terminal=True, file=...)`` here.
console: Console = err_console


def shown(target: Console, *, quiet: bool, as_json: bool) -> bool:
    """The rules: a real terminal on stderr, and neither ``-q`` nor ``--json``."""
    return not quiet and not as_json and target.is_terminal and not target.is_dumb_terminal


@contextmanager
def progress_display(
    ctx: typer.Context, *, as_json: bool, enabled: bool = True
) -> Iterator[ProgressCallback | None]:
    """The callback to hand to the library, or None when nothing is to be shown.

    ``enabled=False`` lets a command turn it off for a mode with nothing long to show
    (``sync --dry-run``).
    """
    target = console
    quiet = global_options(ctx).verbosity < 0
    if not enabled or not shown(target, quiet=quiet, as_json=as_json):
        yield None
        return
    display = Display(target)
    with display.bars:
        yield display.update


class Display:
    """Rich bars keyed by task name; ``update`` may be called from several threads."""

    def __init__(self, target: Console, get_time: Callable[[], float] | None = None) -> None:
        # The bar takes the width left over (none on a narrow terminal); figures never wrap.
        name = Column(no_wrap=True, overflow="ellipsis", max_width=40)
        self.bars = Bars(
            TextColumn("{task.description}", table_column=name),
            BarColumn(bar_width=None, table_column=Column(max_width=40)),
            CountColumn(table_column=Column(no_wrap=True)),
            RateColumn(table_column=Column(no_wrap=True)),
            TimeColumn(table_column=Column(no_wrap=True)),
            console=target,
            get_time=get_time,
        )
        self.tasks: dict[str, TaskID] = {}
        self.done: dict[str, int] = {}
        self.lock = threading.Lock()

    def update(self, event: Progress) -> None:
        with self.lock:
            task_id = self.tasks.get(event.task)
            if task_id is None or event.done < self.done[event.task]:
                task_id = self._start(event, task_id)
            self.done[event.task] = event.done
            description = escape(event.task)
            if event.state == "failed":
                description = f"[red]{description}[/]"
            self.bars.update(
                task_id,
                completed=event.done,
                total=event.total,
                description=description,
                state=event.state,
            )
            if event.state != "running" or (event.total is not None and event.done >= event.total):
                self.bars.stop_task(task_id)  # its rate and time stay those of the work

    def _start(self, event: Progress, task_id: TaskID | None) -> TaskID:
        """A new line; a task that went back to fewer done starts a new line, so its rate
        counts from there (and a resumed run's earlier work is never taken for speed)."""
        if task_id is not None:
            self.bars.remove_task(task_id)
        task_id = self.bars.add_task(
            escape(event.task),
            total=event.total,
            unit=event.unit,
            state=event.state,
            first_done=event.done,
        )
        self.tasks[event.task] = task_id
        return task_id


def rate(task: Task) -> float | None:
    """Units per second since the task appeared (a mean: steadier than rich's window)."""
    elapsed = task.elapsed
    if not elapsed or task.fields["unit"] in UNEVEN_UNITS:
        return None
    return max(0.0, task.completed - task.fields["first_done"]) / elapsed


def amount(value: float, unit: str) -> str:
    if unit == "bytes":
        return filesize.decimal(int(value))
    return f"{value:,.0f}"


class CountColumn(ProgressColumn):
    """done/total; the unit is named in the rate, or here when there is no rate."""

    def render(self, task: Task) -> Text:
        unit = task.fields["unit"]
        figures = amount(task.completed, unit)
        if task.total is not None:
            figures += "/" + amount(task.total, unit)
        named = unit in UNEVEN_UNITS or (task.total is None and unit != "bytes")
        return Text(f"{figures} {unit}" if named else figures)


class RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        if task.fields["state"] == "failed":
            return Text("failed", style="red")
        per_second = rate(task)
        if per_second is None or (per_second == 0 and task.fields["state"] == "running"):
            return Text("")
        unit = task.fields["unit"]
        if unit == "bytes":
            return Text(f"{filesize.decimal(int(per_second))}/s")
        shown = f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:,.1f}"
        return Text(f"{shown} {unit}/s")


class TimeColumn(ProgressColumn):
    """ETA while running with a known total; the time taken once the task has ended."""

    def render(self, task: Task) -> Text:
        if task.fields["state"] != "running" or task.finished:
            return Text(_clock(task.elapsed or 0.0), style="dim")
        per_second = rate(task)
        if task.total is None or not per_second:
            return Text("")
        return Text(f"ETA {_clock((task.total - task.completed) / per_second)}", style="cyan")


def _clock(seconds: float) -> str:
    minutes, second = divmod(max(0, round(seconds)), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}" if hours else f"{minute}:{second:02d}"
