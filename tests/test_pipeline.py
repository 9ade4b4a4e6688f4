"""`chariot run`: sync → aggregate → audit in one command, against the real servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from chariot.config import Settings
from chariot.seed import seed_movielens

pytestmark = pytest.mark.integration


def test_run_takes_movielens_through_every_stage_and_audits_clean(
    cli: Any, settings: Settings, movielens_dir: Path
) -> None:
    seed_movielens(settings.mysql, movielens_dir)

    result = cli("run", "--json", "--workers", "2", settings=settings)

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [stage["stage"] for stage in payload["stages"]] == ["sync", "aggregate", "audit"]
    assert [stage["status"] for stage in payload["stages"]] == ["ok", "ok", "ok"]
    sync, aggregate, audit = payload["stages"]
    assert sync["rows"] == 9_742 + 9_742 + 100_836 + 3_683
    assert aggregate["rows"] == 100_836
    assert audit["result"]["clean"] is True
    assert {r["sink"] for r in audit["result"]["results"]} == {"postgres", "neo4j"}
    assert audit["result"]["summaries"]["status"] == "ok"
    assert all(stage["exit_code"] == 0 and stage["seconds"] >= 0 for stage in payload["stages"])


def test_run_stops_at_the_first_failing_stage_with_its_exit_code(
    cli: Any, sql_settings: Settings, movielens_dir: Path
) -> None:
    seed_movielens(sql_settings.mysql, movielens_dir)
    unreachable_graph = sql_settings.model_copy(
        update={
            "neo4j": sql_settings.neo4j.model_copy(
                update={"uri": "bolt://127.0.0.1:9", "password": SecretStr("Wr0ng-Secret-123")}
            )
        }
    )

    result = cli("run", settings=unreachable_graph)

    # The graph could not be reached: a connection failure (3), not a write failure (5).
    assert result.exit_code == 3
    assert "stage sync failed" in result.stderr
    assert "neo4j" in result.stderr
    assert "Wr0ng-Secret-123" not in result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    for line in ("sync", "aggregate", "audit"):
        assert line in result.stdout
    assert "not run" in result.stdout

    as_json = cli("run", "--json", settings=unreachable_graph)

    assert as_json.exit_code == 3
    stages = json.loads(as_json.stdout)["stages"]
    assert [stage["status"] for stage in stages] == ["failed", "not run", "not run"]
    assert stages[0]["exit_code"] == 3 and "neo4j" in stages[0]["detail"]


def test_run_json_reports_skipped_stages_for_a_postgres_only_pipeline(
    cli: Any, sql_settings: Settings, movielens_dir: Path
) -> None:
    seed_movielens(sql_settings.mysql, movielens_dir)

    result = cli("run", "--sink", "postgres", "--json", settings=sql_settings)

    assert result.exit_code == 0, result.output
    stages = {stage["stage"]: stage for stage in json.loads(result.stdout)["stages"]}
    assert stages["sync"]["status"] == "ok"
    assert stages["aggregate"]["status"] == "ok"
    assert stages["aggregate"]["result"]["graph_status"] == "skipped"
    assert stages["audit"]["status"] == "ok"
    assert {r["sink"] for r in stages["audit"]["result"]["results"]} == {"postgres"}
