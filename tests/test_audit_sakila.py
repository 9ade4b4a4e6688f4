"""The audit on a schema it was never written for (issue #10 item 6): Sakila, made a project
with `chariot init`, synced, audited clean; then the source is changed (updates, deletes,
inserts) and the audit names exactly the rows that changed, per sink, and `--repair`
makes a second audit clean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chariot.audit import AuditOptions, run_audit
from chariot.audit.report import AuditReport
from chariot.config import Settings
from chariot.project import load_project
from chariot.project.init import init_project
from chariot.project.streams import project_streams
from chariot.streams import Stream
from chariot.sync import sync
from tests.audit_support import differences, mysql
from tests.sakila import load_sakila

pytestmark = pytest.mark.integration

FILMS = (1, 2, 3)
PAYMENT = 1


def sakila_project(settings: Settings, directory: Path) -> tuple[Stream, ...]:
    load_sakila(settings.mysql)
    path = directory / "chariot.toml"
    init_project(settings, path=path)
    return project_streams(load_project(path))


def audit(settings: Settings, streams: tuple[Stream, ...], sinks: list[str], **more: Any) -> Any:
    options = AuditOptions(streams=streams, sinks=tuple(sinks), summaries=False, **more)
    return run_audit(settings, options)


def changed_keys(report: AuditReport, sink: str) -> dict[str, dict[str, list[list[Any]]]]:
    """table -> kind -> keys, for the differing tables of one sink."""
    found: dict[str, dict[str, list[list[Any]]]] = {}
    for result in report.results:
        if result.sink == sink and not result.clean:
            kinds = found.setdefault(result.table, {})
            for example in result.examples:
                kinds.setdefault(example.kind, []).append(example.key)
    return {table: {k: sorted(v) for k, v in kinds.items()} for table, kinds in found.items()}


def mutate(settings: Settings) -> dict[str, dict[str, list[list[Any]]]]:
    """Change the source; returns table -> kind -> keys the audit must name."""
    run = settings.mysql
    for film in FILMS:
        mysql(run, "UPDATE film SET title = CONCAT(title, ' II') WHERE film_id = %s", (film,))
    mysql(run, "UPDATE payment SET amount = amount + 1 WHERE payment_id = %s", (PAYMENT,))
    # Every Sakila rental has its payment: the last two rentals lose theirs first, so that
    # nothing refers to them when they go (no orphan, no ON DELETE SET NULL).
    rentals = [row[0] for row in _rows(settings, "SELECT MAX(rental_id) FROM rental")]
    rentals = [rentals[0] - 1, rentals[0]]
    payments = [
        row[0]
        for rental in rentals
        for row in _rows(settings, f"SELECT payment_id FROM payment WHERE rental_id = {rental}")
    ]
    assert payments and PAYMENT not in payments
    for rental in rentals:
        mysql(run, "DELETE FROM payment WHERE rental_id = %s", (rental,))
        mysql(run, "DELETE FROM rental WHERE rental_id = %s", (rental,))
    mysql(run, "DELETE FROM film_actor WHERE actor_id = 1 AND film_id = 1")
    mysql(run, "INSERT INTO actor (actor_id, first_name, last_name) VALUES (201, 'ADA', 'NEW')")
    mysql(run, "INSERT INTO film_actor (actor_id, film_id) VALUES (201, 5)")
    films = [[film] for film in FILMS]
    return {
        "film": {"differing": films},
        # Sakila's own trigger copies every title change into film_text.
        "film_text": {"differing": films},
        "payment": {"differing": [[PAYMENT]], "extra": sorted([p] for p in payments)},
        "rental": {"extra": [[rental] for rental in rentals]},
        "actor": {"missing": [[201]]},
        "film_actor": {"extra": [[1, 1]], "missing": [[201, 5]]},
    }


def _rows(settings: Settings, statement: str) -> list[tuple[Any, ...]]:
    from chariot.connections import mysql_connect

    connection = mysql_connect(settings.mysql)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            return list(cursor.fetchall())
    finally:
        connection.close()


def _audit_mutate_repair(settings: Settings, streams: tuple[Stream, ...], sinks: list[str]) -> None:
    result = sync(settings, sinks=sinks, streams=streams)
    assert result.ok, result.failures
    clean = audit(settings, streams, sinks)
    assert differences(clean) == {}, [r.examples for r in clean.results if not r.clean]
    assert not clean.orphans

    expected = mutate(settings)
    found = audit(settings, streams, sinks)
    for sink in sinks:
        assert changed_keys(found, sink) == expected, sink
    assert not found.orphans

    repaired = audit(settings, streams, sinks, repair=True)
    assert repaired.repair is not None
    assert differences(repaired, after_repair=True) == {}
    assert audit(settings, streams, sinks).clean


def test_sakila_postgres_audit_names_exactly_the_changed_rows_and_repair_cleans(
    sql_settings: Settings, tmp_path: Path
) -> None:
    _audit_mutate_repair(sql_settings, sakila_project(sql_settings, tmp_path), ["postgres"])


def test_sakila_neo4j_audit_names_exactly_the_changed_rows_and_repair_cleans(
    settings: Settings, tmp_path: Path
) -> None:
    _audit_mutate_repair(settings, sakila_project(settings, tmp_path), ["postgres", "neo4j"])
