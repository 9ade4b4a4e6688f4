"""`chariot init` on MySQL's Sakila sample database: a real schema nobody here designed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chariot.config import RunSettings, Settings
from chariot.connections import mysql_connect
from chariot.project import Project, load_project
from chariot.project.source_checks import check_project
from chariot.project.streams import project_streams
from tests.sakila import ROW_COUNTS, VIEWS, add_location_column, load_sakila, row_counts
from tests.servers import Servers

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _no_project_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CHARIOT_PROJECT of the developer's shell must not redirect what init writes."""
    monkeypatch.delenv("CHARIOT_PROJECT", raising=False)


@pytest.fixture(scope="module")
def sakila(servers: Servers) -> Iterator[Settings]:
    """Sakila in a database of this module's own (read only by its tests), plus
    ``address.location GEOMETRY`` as MySQL 5.7+'s Sakila has it."""
    name = f"chariot_t_{uuid.uuid4().hex[:12]}"
    admin = mysql_connect(servers.mysql)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        mysql = servers.mysql.model_copy(update={"database": name})
        load_sakila(mysql)
        add_location_column(mysql)
        yield Settings(
            mysql=mysql, postgres=servers.postgres, neo4j=servers.neo4j, run=RunSettings()
        )
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(scope="module")
def proposed(sakila: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str]:
    from chariot.project.init import init_project

    path = tmp_path_factory.mktemp("sakila") / "chariot.toml"
    init_project(sakila, path=path)
    return load_project(path), path.read_text(encoding="utf-8")


def test_sakila_loads_with_the_readme_row_counts(sakila: Settings) -> None:
    assert row_counts(sakila.mysql) == ROW_COUNTS


def test_init_proposes_the_16_tables_with_their_keys(proposed: tuple[Project, str]) -> None:
    project, text = proposed
    keys = {name: tuple(table.key) for name, table in project.tables.items()}
    assert set(keys) == set(ROW_COUNTS)
    assert keys["film_actor"] == ("actor_id", "film_id")
    assert keys["film_category"] == ("film_id", "category_id")
    assert all(len(key) == 1 for name, key in keys.items() if not name.startswith("film_"))
    for view in VIEWS:  # views, triggers and routines are not data
        assert view not in project.tables and f"[tables.{view}]" not in text
    assert "Tables left out" not in text  # every Sakila table has a primary key


# (table, column, source type, PostgreSQL, Neo4j, nullable)
SAKILA_TYPES = [
    ("actor", "actor_id", "smallint unsigned", "integer", "integer", False),
    ("category", "category_id", "tinyint unsigned", "smallint", "integer", False),
    ("inventory", "inventory_id", "mediumint unsigned", "integer", "integer", False),
    ("film", "rental_rate", "decimal(4,2)", "numeric(4,2)", "float", False),
    ("film", "release_year", "year", "smallint", "integer", True),
    ("film", "rating", "enum('G','PG','PG-13','R','NC-17')", "text", "string", True),
    (
        "film",
        "special_features",
        "set('Trailers','Commentaries','Deleted Scenes','Behind the Scenes')",
        "text[]",
        "list<string>",
        True,
    ),
    ("film", "description", "text", "text", "string", True),
    ("film", "last_update", "timestamp", "timestamptz", "zoned datetime", False),
    ("rental", "return_date", "datetime", "timestamp", "local datetime", True),
    ("payment", "rental_id", "int", "integer", "integer", True),
    ("language", "name", "char(20)", "text", "string", False),
    ("staff", "picture", "blob", "bytea", "bytes", True),
    ("staff", "active", "tinyint(1)", "boolean", "boolean", False),
    ("staff", "password", "varchar(40)", "text", "string", True),
    ("film_text", "film_id", "smallint", "smallint", "integer", False),
]


@pytest.mark.parametrize(
    ("table", "column", "source", "postgres", "neo4j", "nullable"),
    SAKILA_TYPES,
    ids=[f"{t}.{c}" for t, c, *_ in SAKILA_TYPES],
)
def test_init_maps_sakila_types(
    proposed: tuple[Project, str],
    table: str,
    column: str,
    source: str,
    postgres: str,
    neo4j: str,
    nullable: bool,
) -> None:
    found = proposed[0].tables[table].columns[column]
    assert (found.type, found.postgres, found.neo4j, found.nullable) == (
        source,
        postgres,
        neo4j,
        nullable,
    )


def test_unmapped_geometry_is_skipped_with_a_comment(proposed: tuple[Project, str]) -> None:
    project, text = proposed
    assert "location" not in project.tables["address"].columns
    section = text.split("[tables.address]", 1)[1].split("[tables.address.columns]", 1)[0]
    assert "# skipped: location (geometry): no PostgreSQL/Neo4j mapping" in section


def test_two_foreign_keys_to_language_are_two_relationship_types(
    proposed: tuple[Project, str],
) -> None:
    film_language = [
        (r.type, r.to.key)
        for r in proposed[0].graph.relationships
        if (r.from_.label, r.to.label) == ("Film", "Language")
    ]
    assert sorted(film_language) == [
        ("LANGUAGE", ["language_id"]),
        ("ORIGINAL_LANGUAGE", ["original_language_id"]),
    ]


def test_join_tables_become_relationships_with_their_columns(
    proposed: tuple[Project, str],
) -> None:
    project, text = proposed
    assert "FilmActor" not in project.graph.nodes and "FilmCategory" not in project.graph.nodes
    acted = next(r for r in project.graph.relationships if r.table == "film_actor")
    assert (acted.from_.label, acted.from_.key, acted.to.label, acted.to.key) == (
        "Actor",
        ["actor_id"],
        "Film",
        ["film_id"],
    )
    assert acted.properties == {"last_update": "last_update"}
    assert "# join table film_actor" in text


def test_every_other_table_is_a_label_and_every_foreign_key_a_relationship(
    proposed: tuple[Project, str],
) -> None:
    project, _ = proposed
    assert len(project.graph.nodes) == 14  # 16 tables, 2 of them join tables
    # Sakila's 22 foreign keys: 4 of them are the join tables' keys (2 relationships).
    assert len(project.graph.relationships) == 22 - 4 + 2


def test_init_writes_each_foreign_keys_actions(proposed: tuple[Project, str]) -> None:
    """sakila-schema.sql: every foreign key is ON UPDATE CASCADE; payment.rental_id is ON
    DELETE SET NULL, the others ON DELETE RESTRICT (MariaDB does not report its default,
    RESTRICT, which acts as NO ACTION: the file leaves it out)."""
    project, text = proposed
    references = {
        (name, reference.table, tuple(reference.columns)): reference
        for name, table in project.tables.items()
        for reference in table.references
    }
    assert len(references) == 22  # every Sakila foreign key points at a primary key
    assert {r.on_update for r in references.values()} == {"cascade"}
    deletes = {where: r.on_delete for where, r in references.items() if r.on_delete != "no action"}
    assert deletes == {("payment", "rental", ("rental_id",)): "set null"}
    payment = text.split("[tables.payment]", 1)[1].split("[tables.payment.columns]", 1)[0]
    assert (
        '{ table = "rental", columns = ["rental_id"], on_delete = "set null", '
        'on_update = "cascade" }' in payment
    )
    streams = {stream.name: stream for stream in project_streams(project)}
    rental = next(r for r in streams["payment"].references if r.table == "rental")
    assert (rental.on_delete, rental.on_update) == ("set null", "cascade")


def test_the_proposal_matches_the_live_source(
    proposed: tuple[Project, str], sakila: Settings
) -> None:
    assert check_project(proposed[0], sakila) == []


def test_a_foreign_key_action_the_source_does_not_have_is_reported(
    proposed: tuple[Project, str], sakila: Settings
) -> None:
    project = proposed[0].model_copy(deep=True)
    payment = project.tables["payment"]
    position = next(i for i, r in enumerate(payment.references) if r.table == "rental")
    payment.references[position].on_delete = "cascade"
    payment.references[0 if position else 1].on_update = "restrict"  # the source: cascade
    other = 0 if position else 1
    problems = {p.path: p.message for p in check_project(project, sakila)}
    deleted, updated = (
        f"tables.payment.references[{position}].on_delete",
        f"tables.payment.references[{other}].on_update",
    )
    assert set(problems) == {deleted, updated}
    assert problems[deleted] == (
        "the source's foreign key payment(rental_id) -> rental(rental_id) has "
        "on_delete = 'set null', not 'cascade'"
    )
    assert problems[updated].endswith("has on_update = 'cascade', not 'restrict'")


def test_init_cli_on_sakila(cli: Callable[..., Any], sakila: Settings, tmp_path: Path) -> None:
    result = cli("init", "--json", "--exclude", "film_text", settings=sakila)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["tables"]) == 15
    assert report["skipped_columns"] == [
        "address: skipped: location (geometry): no PostgreSQL/Neo4j mapping"
    ]
    assert "(:Actor)-[:FILM_ACTOR]->(:Film)" in report["relationships"]
