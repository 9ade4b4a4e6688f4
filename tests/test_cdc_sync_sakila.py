"""Change capture on Sakila, both sinks: updates, deletes, inserts, a key change that
cascades through ``ON UPDATE CASCADE`` foreign keys, and a delete that sets ``payment``'s
``rental_id`` to NULL (``ON DELETE SET NULL``). The binary log holds only the parents' rows;
one plain ``chariot sync`` must still leave both sinks equal to the source."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chariot.config import Settings
from chariot.connections import neo4j_session, postgres_connection
from tests.sakila import load_sakila
from tests.sync_support import mysql_execute

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _postgres(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    with postgres_connection(settings.postgres) as connection:
        connection.execute(f'SET search_path TO "{settings.postgres.schema_name}"')
        return [tuple(row) for row in connection.execute(query).fetchall()]


def _graph(settings: Settings, query: str) -> Any:
    with neo4j_session(settings.neo4j) as session:
        return session.run(query).single(strict=True)[0]


def test_sakila_changes_and_foreign_key_actions_reach_both_sinks(
    cli: Callable[..., Any], settings: Settings, tmp_path: Path
) -> None:
    load_sakila(settings.mysql)
    env = {"CHARIOT_PROJECT": str(tmp_path / "chariot.toml")}
    assert cli("init", settings=settings, env=env).exit_code == 0
    first = cli("sync", "--json", settings=settings, env=env)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["mode"] == "cdc"
    films_of_actor_1 = _postgres(settings, "SELECT count(*) FROM film_actor WHERE actor_id = 1")
    (rental,) = _postgres(
        settings, "SELECT rental_id FROM payment WHERE rental_id IS NOT NULL LIMIT 1"
    )[0:1]

    mysql_execute(
        settings.mysql,
        "UPDATE film SET title = CONCAT(title, ' II') WHERE film_id IN (1, 2, 3)",
        "UPDATE payment SET amount = amount + 1 WHERE payment_id = 5",
        "DELETE FROM film_actor WHERE actor_id = 2 AND film_id = 3",
        "DELETE FROM payment WHERE payment_id = 7",
        "INSERT INTO actor (actor_id, first_name, last_name) VALUES (201, 'NEW', 'ACTOR')",
        "INSERT INTO film_actor (actor_id, film_id) VALUES (201, 1)",
        # ON UPDATE CASCADE: film_actor rows of actor 1 move to actor 500 (their key changes).
        "UPDATE actor SET actor_id = 500 WHERE actor_id = 1",
        # ON DELETE SET NULL: the rental's payments keep their rows, rental_id NULL.
        ("DELETE FROM rental WHERE rental_id = %s", rental),
    )
    caught_up = cli("sync", "--json", settings=settings, env=env)
    assert caught_up.exit_code == 0, caught_up.output
    changes = json.loads(caught_up.stdout)["changes"]
    assert {part["sink"] for part in changes} == {"postgres", "neo4j"}

    audit = cli("audit", "--json", settings=settings, env=env)
    assert audit.exit_code == 0, audit.output[-4000:]
    assert _postgres(settings, "SELECT count(*) FROM film_actor WHERE actor_id = 500") == (
        films_of_actor_1
    )
    assert _postgres(settings, "SELECT count(*) FROM film_actor WHERE actor_id = 1") == [(0,)]
    assert _postgres(settings, f"SELECT count(*) FROM payment WHERE rental_id = {rental[0]}") == [
        (0,)
    ]
    moved = "MATCH (:Actor {actor_id: 500})-[r:FILM_ACTOR]->(:Film) RETURN count(r)"
    assert _graph(settings, moved) == films_of_actor_1[0][0]
    assert _graph(settings, "MATCH (a:Actor {actor_id: 1}) RETURN count(a)") == 0
