"""Watermark snapshots end to end on MovieLens: the first copy into both sinks is made in
chunks while a workload keeps changing the source; one more sync catches up and the audit
is clean, with no repair."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chariot.cdc.watermark import watermark_ddl
from chariot.config import Settings
from chariot.seed import seed_movielens
from chariot.sync import sync
from tests.audit_support import audit, differences, mysql
from tests.cdc_workload import ChangeWorkload

pytestmark = [pytest.mark.integration]


@pytest.mark.slow
def test_a_watermark_first_copy_under_changes_audits_clean(
    settings: Settings, movielens_dir: Path
) -> None:
    seed_movielens(settings.mysql, movielens_dir)
    mysql(settings.mysql, watermark_ddl("chariot_watermarks"))
    settings.run.snapshot = "watermark"
    settings.run.batch_size = 5_000  # ratings: about 20 chunks
    sinks = ["postgres", "neo4j"]
    workload = ChangeWorkload(settings.mysql, seed=23)
    stop = threading.Event()
    thread = threading.Thread(target=workload.run, args=(stop,), daemon=True)
    thread.start()
    try:
        first = sync(settings, sinks=sinks, mode="cdc")
    finally:
        stop.set()
        thread.join()
        workload.close()
    assert not first.failures, first.failures
    assert workload.transactions > 0
    assert all(table.rows_read == 0 for table in first.tables)  # no copy before the log
    assert all(part.upserts > 0 for part in first.changes)  # the chunks came through it

    second = sync(settings, sinks=sinks, mode="cdc")
    assert not second.failures, second.failures
    report = audit(settings)
    assert differences(report) == {}, json.dumps(report.model_dump(mode="json"), default=str)[:3000]


def test_sync_without_the_watermark_table_is_one_error_line_with_exit_4(
    settings: Settings, movielens_dir: Path, cli: Callable[..., Any]
) -> None:
    seed_movielens(settings.mysql, movielens_dir)
    settings.run.snapshot = "watermark"
    outcome = cli("sync", "--sink", "postgres", "--mode", "cdc", settings=settings)
    assert outcome.exit_code == 4, outcome.output
    errors = [line for line in outcome.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, outcome.output
    assert "chariot_watermarks" in errors[0]
    assert "CREATE TABLE `chariot_watermarks`" in outcome.output
    assert "GRANT INSERT, UPDATE ON" in outcome.output
    assert "Traceback" not in outcome.output
