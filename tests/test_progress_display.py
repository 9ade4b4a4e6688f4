"""The one progress display (cli/progress.py): its rules, its lines, and that every long
command feeds it; the library's progress events, against the real servers."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import click
import pytest
from rich.console import Console

from chariot.cli import progress as display_module
from chariot.cli.common import GlobalOptions
from chariot.cli.progress import Display, progress_display, shown
from chariot.config import Settings
from chariot.progress import Progress, notify, prefixed

RATE = re.compile(r"[\d,.]+ rows/s")


def terminal(width: int = 160) -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=width, color_system=None)


def screen(console: Console) -> str:
    """What was drawn, without the cursor movements between redraws."""
    text = console.file.getvalue()  # type: ignore[attr-defined]
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


# -- the rules ------------------------------------------------------------------------------


def test_shown_only_on_a_terminal_without_quiet_or_json() -> None:
    on_terminal = terminal()
    assert shown(on_terminal, quiet=False, as_json=False)
    assert not shown(on_terminal, quiet=True, as_json=False)
    assert not shown(on_terminal, quiet=False, as_json=True)
    piped = Console(file=io.StringIO())
    assert not piped.is_terminal
    assert not shown(piped, quiet=False, as_json=False)


def test_a_dumb_terminal_gets_no_redraws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    assert not shown(terminal(), quiet=False, as_json=False)


@pytest.mark.parametrize(
    ("verbosity", "as_json", "enabled", "expected"),
    [
        (0, False, True, True),
        (1, False, True, True),
        (-1, False, True, False),  # -q
        (0, True, True, False),  # --json
        (0, False, False, False),  # the command has nothing long to show (sync --dry-run)
    ],
)
def test_progress_display_gives_a_callback_only_when_shown(
    monkeypatch: pytest.MonkeyPatch, verbosity: int, as_json: bool, enabled: bool, expected: bool
) -> None:
    console = terminal()
    monkeypatch.setattr(display_module, "console", console)
    ctx = click.Context(click.Command("x"), obj=GlobalOptions(verbosity=verbosity))
    with progress_display(ctx, as_json=as_json, enabled=enabled) as callback:  # type: ignore[arg-type]
        if callback is not None:
            callback(Progress("ratings -> postgres", 5, 10))
    assert (callback is not None) is expected
    assert ("ratings -> postgres" in screen(console)) is expected


def test_progress_display_is_hidden_when_stderr_is_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(display_module, "console", Console(file=io.StringIO()))
    ctx = click.Context(click.Command("x"), obj=GlobalOptions())
    with progress_display(ctx, as_json=False) as callback:  # type: ignore[arg-type]
        assert callback is None


# -- the lines ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def rendered(display: Display, task: str) -> str:
    """The task's rendered line, spaces collapsed."""
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(display.bars.make_tasks_table(display.bars.tasks))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    (found,) = [row for row in text.splitlines() if row.startswith(task + " ")]
    return " ".join(found.split())


def test_a_line_shows_done_total_rate_and_eta_then_the_time_taken() -> None:
    clock = Clock()
    display = Display(terminal(), get_time=clock)
    display.update(Progress("ratings -> postgres", 0, 100_000))
    clock.now = 2.0
    display.update(Progress("ratings -> postgres", 50_000, 100_000))
    line = rendered(display, "ratings -> postgres")
    assert "50,000/100,000 25,000 rows/s" in line
    assert "ETA 0:02" in line

    clock.now = 4.0
    display.update(Progress("ratings -> postgres", 100_000, 100_000, state="done"))
    clock.now = 60.0  # the display stays open; the finished task's figures must not drift
    line = rendered(display, "ratings -> postgres")
    assert "100,000/100,000 25,000 rows/s" in line
    assert "0:04" in line and "ETA" not in line


def test_rate_counts_only_work_seen_by_the_display() -> None:
    clock = Clock()
    display = Display(terminal(), get_time=clock)
    display.update(Progress("partitions", 30, 40, unit="partitions"))  # a resumed run
    clock.now = 5.0
    display.update(Progress("partitions", 35, 40, unit="partitions"))
    line = rendered(display, "partitions")
    assert "35/40 1.0 partitions/s" in line
    assert "ETA 0:05" in line


def test_a_task_that_starts_again_counts_from_the_restart() -> None:
    clock = Clock()
    display = Display(terminal(), get_time=clock)
    display.update(Progress("ratings vs postgres", 0, 8, unit="segments"))
    clock.now = 1.0
    display.update(Progress("ratings vs postgres", 8, 8, unit="segments", state="done"))
    clock.now = 10.0
    display.update(Progress("ratings vs postgres", 0, 8, unit="segments"))
    clock.now = 12.0
    display.update(Progress("ratings vs postgres", 4, 8, unit="segments"))
    line = rendered(display, "ratings vs postgres")
    assert "4/8 2.0 segments/s" in line and "ETA 0:02" in line


def test_unknown_total_failed_task_and_bytes() -> None:
    clock = Clock()
    display = Display(terminal(), get_time=clock)
    display.update(Progress("graph", 0, None, unit="movies"))
    display.update(Progress("movielens CSV files", 0, 3_000_000, unit="bytes"))
    display.update(Progress("tags -> neo4j", 0, 100))
    clock.now = 2.0
    display.update(Progress("graph", 10, None, unit="movies"))
    display.update(Progress("movielens CSV files", 1_000_000, 3_000_000, unit="bytes"))
    display.update(Progress("tags -> neo4j", 40, 100, state="failed"))
    graph = rendered(display, "graph")
    assert "10 movies" in graph and "ETA" not in graph
    csv = rendered(display, "movielens CSV files")
    assert "1.0 MB/3.0 MB" in csv and "500.0 kB/s" in csv and "ETA 0:04" in csv
    failed = rendered(display, "tags -> neo4j")
    assert "40/100 failed" in failed


def test_steps_of_uneven_length_get_no_rate_or_eta() -> None:
    clock = Clock()
    display = Display(terminal(), get_time=clock)
    display.update(Progress("pipeline", 0, 3, unit="stages"))
    clock.now = 10.0
    display.update(Progress("pipeline", 1, 3, unit="stages"))
    line = rendered(display, "pipeline")
    assert "1/3 stages" in line and "/s" not in line and "ETA" not in line
    clock.now = 30.0
    display.update(Progress("pipeline", 3, 3, unit="stages", state="done"))
    assert rendered(display, "pipeline").endswith("3/3 stages 0:30")


def test_an_80_column_terminal_keeps_one_line_per_task_and_whole_figures() -> None:
    clock = Clock()
    display = Display(terminal(), get_time=clock)
    names = ("sync: ratings -> postgres", "aggregate: summaries -> neo4j", "aggregate: partitions")
    for name in names:
        display.update(Progress(name, 0, 100_836, unit="partitions"))
    clock.now = 1.0
    for name in names:
        display.update(Progress(name, 50_000, 100_836, unit="partitions"))
    console = Console(file=io.StringIO(), width=80, color_system=None)
    console.print(display.bars.make_tasks_table(display.bars.tasks))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert [line.split("  ")[0].split(" ━")[0] for line in text.splitlines()] == list(names)
    assert text.count("50,000/100,836 50,000 partitions/s ETA 0:01") == len(names)
    assert "━" in text  # a bar is left


def test_task_names_are_text_not_markup() -> None:
    display = Display(terminal())
    display.update(Progress("[bold]odd[/bold] -> sink", 1, 2))
    assert "1/2" in rendered(display, "[bold]odd[/bold] -> sink")


def test_notify_never_lets_a_broken_display_fail_the_work() -> None:
    def broken(event: Progress) -> None:
        raise RuntimeError("display broke")

    notify(broken, "ratings -> postgres", 1, 2)
    notify(None, "ratings -> postgres", 1, 2)


def test_prefixed_names_the_stage() -> None:
    seen: list[Progress] = []
    forward = prefixed(seen.append, "sync: ")
    assert forward is not None and prefixed(None, "sync: ") is None
    forward(Progress("ratings -> postgres", 1, 2))
    assert seen == [Progress("sync: ratings -> postgres", 1, 2)]


# -- the library reports, the commands draw (real servers) ---------------------------------


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> Console:
    """The display draws on this forced terminal for the commands run in the test."""
    console = terminal()
    monkeypatch.setattr(display_module, "console", console)
    return console


def seed_small(settings: Settings, ratings: int = 3_000) -> None:
    from chariot.seed import seed_synthetic

    seed_synthetic(settings.mysql, ratings, seed=7)


def last_events(events: list[Progress]) -> dict[str, Progress]:
    return {event.task: event for event in events}


@pytest.mark.integration
def test_seed_commands_draw_their_progress(
    cli: Any, sql_settings: Settings, drawn: Console, movielens_dir: Path
) -> None:
    result = cli("seed", "synthetic", "--ratings", "3000", settings=sql_settings)
    assert result.exit_code == 0, result.output
    assert "synthetic ratings" in screen(drawn) and RATE.search(screen(drawn))

    result = cli("seed", "movielens", "--dir", str(movielens_dir), settings=sql_settings)
    assert result.exit_code == 0, result.output
    assert "movielens CSV files" in screen(drawn) and "B/s" in screen(drawn)


@pytest.mark.integration
@pytest.mark.parametrize("hidden_by", ["-q", "--json"])
def test_quiet_and_json_draw_nothing(
    cli: Any, sql_settings: Settings, drawn: Console, hidden_by: str
) -> None:
    def command(*args: str) -> list[str]:  # -q is global (before the command), --json not
        return ["-q", *args] if hidden_by == "-q" else [*args, "--json"]

    assert (
        cli(*command("seed", "synthetic", "--ratings", "500"), settings=sql_settings).exit_code == 0
    )
    assert cli(*command("sync", "--sink", "postgres"), settings=sql_settings).exit_code == 0
    assert screen(drawn) == ""


@pytest.mark.integration
def test_sync_aggregate_and_audit_draw_their_progress(
    cli: Any, sql_settings: Settings, drawn: Console
) -> None:
    seed_small(sql_settings)
    for args, expected in (
        (("sync", "--sink", "postgres"), ("ratings -> postgres", "tags -> postgres")),
        (("aggregate", "--no-graph", "--workers", "1"), ("partitions", "partitions/s")),
        (("audit", "--sink", "postgres"), ("ratings vs postgres", "segments/s")),
    ):
        result = cli(*args, settings=sql_settings)
        assert result.exit_code == 0, result.output
        for text in expected:
            assert text in screen(drawn), (args, text)
    assert RATE.search(screen(drawn))


@pytest.mark.integration
def test_sync_dry_run_draws_nothing(cli: Any, sql_settings: Settings, drawn: Console) -> None:
    seed_small(sql_settings, 500)
    assert cli("sync", "--sink", "postgres", "--dry-run", settings=sql_settings).exit_code == 0
    assert screen(drawn) == ""


@pytest.mark.integration
def test_audit_reports_segments_per_table_and_sink_with_totals(sql_settings: Settings) -> None:
    from chariot.audit import AuditOptions, run_audit
    from chariot.sync import sync

    seed_small(sql_settings)
    sync(sql_settings, sinks=["postgres"])
    events: list[Progress] = []
    report = run_audit(
        sql_settings,
        AuditOptions(sinks=("postgres",), tables=("movies", "ratings"), segment_rows=500),
        progress=events.append,
    )
    final = last_events(events)
    assert set(final) == {"movies vs postgres", "ratings vs postgres", "summaries"}
    for result in report.results:
        last = final[f"{result.table} vs postgres"]
        assert (last.done, last.total, last.unit, last.state) == (
            result.segments,
            result.segments,
            "segments",
            "done",
        )
        assert result.segments > 1
    ratings = [e.done for e in events if e.task == "ratings vs postgres"]
    assert ratings == sorted(ratings) and len(set(ratings)) > 2  # it moves, never back


@pytest.mark.integration
def test_audit_repair_reports_the_second_audit_apart(sql_settings: Settings) -> None:
    from chariot.audit import AuditOptions, run_audit
    from chariot.connections import postgres_connection
    from chariot.sync import sync

    seed_small(sql_settings, 500)
    sync(sql_settings, sinks=["postgres"])
    schema = sql_settings.postgres.schema_name
    with postgres_connection(sql_settings.postgres) as connection:
        table = f'"{schema}".movies'
        connection.execute(
            f"DELETE FROM {table} WHERE movie_id = (SELECT min(movie_id) FROM {table})"
        )
        connection.commit()
    events: list[Progress] = []
    options = AuditOptions(sinks=("postgres",), tables=("movies",), repair=True)
    report = run_audit(sql_settings, options, progress=events.append)
    assert report.clean
    assert {e.task for e in events} == {"movies vs postgres", "after repair: movies vs postgres"}


@pytest.mark.integration
def test_run_pipeline_forwards_every_stage(settings: Settings) -> None:
    from chariot.pipeline import run_pipeline

    seed_small(settings)
    events: list[Progress] = []
    result = run_pipeline(settings, workers=1, progress=events.append)
    assert result.ok
    final = last_events(events)
    expected = {
        "pipeline",
        "aggregate: partitions",
        "aggregate: summaries -> neo4j",
        "audit: summaries",
        *(f"sync: {t} -> {s}" for t in ("movies", "links", "ratings", "tags") for s in SINKS),
        *(f"audit: {t} vs {s}" for t in ("movies", "links", "ratings", "tags") for s in SINKS),
    }
    assert set(final) == expected
    assert (final["pipeline"].done, final["pipeline"].total, final["pipeline"].state) == (
        3,
        3,
        "done",
    )
    stages = [e.done for e in events if e.task == "pipeline"]
    assert stages == [0, 1, 2, 3]
    assert all(e.state == "done" for name, e in final.items() if name.startswith("sync: "))
    assert final["aggregate: partitions"].done == final["aggregate: partitions"].total


SINKS = ("postgres", "neo4j")


@pytest.mark.integration
def test_run_draws_every_stage(cli: Any, settings: Settings, drawn: Console) -> None:
    seed_small(settings)
    result = cli("run", "--workers", "1", settings=settings)
    assert result.exit_code == 0, result.output
    text = screen(drawn)
    for name in (
        "pipeline",
        "3/3 stages",
        "sync: ratings -> neo4j",
        "aggregate: partitions",
        "aggregate: summaries -> neo4j",
        "audit: ratings vs neo4j",
        "audit: tags vs postgres",
    ):
        assert name in text, name
    assert RATE.search(text) and "segments/s" in text
