"""Two writers never share a sink table: the second exits at once with "busy" (exit 9) and
has changed nothing; `aggregate` refuses a half-loaded input table; `--wait` queues.

The first writer is paused deterministically: its progress callback blocks after its first
committed batch, holding the lease, until the test releases it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Settings
from chariot.exit_codes import ExitCode
from chariot.sync import Progress, SyncResult, sync
from tests.neo4j_support import assert_graph_equals_source, graph_rows
from tests.sync_support import assert_postgres_equals_source, postgres_rows, seed_movielens

pytestmark = pytest.mark.integration


@dataclass
class PausedSync:
    """A sync running in a thread, stopped after its first committed batch on ``sink``."""

    settings: Settings
    sink: str
    tables: list[str]
    full_refresh: bool
    paused: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    result: SyncResult | None = None
    error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self.paused.wait(120), f"the first sync never committed a batch: {self.error}"

    def finish(self) -> SyncResult:
        self.release.set()
        self._thread.join(300)
        assert self.error is None, self.error
        assert self.result is not None
        return self.result

    def _progress(self, event: Progress) -> None:
        mine = event.task.endswith(f"-> {self.sink}")
        if mine and event.done > 0 and not self.paused.is_set():
            self.paused.set()
            self.release.wait(300)

    def _run(self) -> None:
        try:
            self.result = sync(
                self.settings,
                tables=self.tables,
                sinks=[self.sink],
                full_refresh=self.full_refresh,
                progress=self._progress,
            )
        except BaseException as error:  # reported by finish()
            self.error = error
            self.paused.set()


@pytest.fixture
def synced(settings: Settings, movielens_dir: Path) -> Iterator[Settings]:
    """ml-latest-small in the source and in both sinks, with small batches."""
    seed_movielens(settings.mysql, movielens_dir)
    small = settings.model_copy(
        update={"run": settings.run.model_copy(update={"batch_size": 5_000})}
    )
    result = sync(small)
    assert result.ok, result.failures
    yield small


def _count(settings: Settings, sink: str, table: str) -> int:
    if sink == "postgres":
        return len(postgres_rows(settings.postgres, table))
    return len(graph_rows(settings.neo4j, table))


@pytest.mark.parametrize("sink", ["postgres", "neo4j"])
def test_a_second_full_refresh_is_busy_and_changes_nothing(
    cli: Any, synced: Settings, sink: str
) -> None:
    first = PausedSync(synced, sink, ["ratings"], full_refresh=True)
    first.start()
    before = _count(synced, sink, "ratings")

    second = cli("sync", "--full-refresh", "-t", "ratings", "--sink", sink, settings=synced)

    assert second.exit_code == ExitCode.BUSY, second.output
    assert "Traceback" not in second.output
    assert "held by" in second.stderr and "chariot" in second.stderr
    assert _count(synced, sink, "ratings") == before  # the loser deleted and wrote nothing
    assert first.finish().ok
    assert_postgres_equals_source(synced.mysql, synced.postgres)
    assert_graph_equals_source(synced.mysql, synced.neo4j)


def test_tables_that_write_the_same_graph_labels_share_one_lease(
    cli: Any, synced: Settings
) -> None:
    first = PausedSync(synced, "neo4j", ["ratings"], full_refresh=True)
    first.start()
    movies = cli("sync", "--full-refresh", "-t", "movies", "--sink", "neo4j", settings=synced)
    assert movies.exit_code == ExitCode.BUSY, movies.output
    assert first.finish().ok
    assert_graph_equals_source(synced.mysql, synced.neo4j)


def test_repair_during_a_sync_is_busy(cli: Any, synced: Settings) -> None:
    first = PausedSync(synced, "postgres", ["ratings"], full_refresh=True)
    first.start()
    repair = cli("audit", "--repair", "-t", "ratings", "--sink", "postgres", settings=synced)
    assert repair.exit_code == ExitCode.BUSY, repair.output
    assert first.finish().ok


def test_aggregate_refuses_a_half_loaded_input_table(cli: Any, synced: Settings) -> None:
    first = PausedSync(synced, "postgres", ["ratings"], full_refresh=True)
    first.start()
    refused = cli("aggregate", "--no-graph", settings=synced)
    assert refused.exit_code == ExitCode.BUSY, refused.output
    assert "ratings" in refused.stderr
    assert first.finish().ok
    assert cli("aggregate", "--no-graph", settings=synced).exit_code == 0


def test_wait_queues_behind_the_holder(cli: Any, synced: Settings) -> None:
    first = PausedSync(synced, "postgres", ["ratings"], full_refresh=True)
    first.start()
    outcome: dict[str, Any] = {}
    waiting = threading.Thread(
        target=lambda: outcome.update(
            result=cli(
                "sync", "-t", "ratings", "--sink", "postgres", "--wait", "120", settings=synced
            )
        )
    )
    waiting.start()
    assert first.finish().ok
    waiting.join(300)
    assert outcome["result"].exit_code == 0, outcome["result"].output
    assert_postgres_equals_source(synced.mysql, synced.postgres)


def test_aggregate_writes_summaries_beside_a_writer_of_the_same_labels(
    cli: Any, synced: Settings
) -> None:
    """A follower holds its labels for as long as it runs; the write-back of summaries
    takes a lease of its own (it writes only the summary properties), so it goes on."""
    from chariot.sinks.neo4j.sink import Neo4jSink
    from tests.movielens_project import MOVIES, RATINGS

    with Neo4jSink(synced) as holder:
        holder.acquire(MOVIES)
        holder.acquire(RATINGS)
        done = cli("aggregate", settings=synced)
    assert done.exit_code == 0, done.output
