"""Python transforms (issue #10 item 4): a plugin registers a function under the
``chariot.transforms`` entry point group, a ``python`` transform applies it; PostgreSQL
stores the value computed in Python, Neo4j too, and the audit compares it in Python."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chariot.audit.forms import postgres_canonical
from chariot.config import Settings
from chariot.errors import ConfigError, DataError
from chariot.exit_codes import ExitCode
from chariot.project import parse_project
from chariot.project.expressions import postgres_expression, python_function
from chariot.project.outputs import table_outputs
from chariot.project.streams import project_streams
from chariot.project.writer import render_project

PLUGIN = Path(__file__).parent / "plugins" / "chariot-slug-transform"
FUNCTIONS = ("letters", "slugify", "words")

PROJECT = """
[tables.books]
key = ["id"]
transforms = [
  { python = "title", function = "slugify", to = "text", into = "slug" },
  { python = "title", function = "words", to = "text[]", into = "words" },
  { python = "title", function = "letters", to = "integer", into = "letters" },
]

[tables.books.columns]
id = { type = "int" }
title = { type = "varchar(80)", nullable = true }

[graph.nodes.Book]
table = "books"
key = ["id"]
properties = { title = "title", slug = "slug", words = "words", letters = "letters" }
"""


@pytest.fixture
def slug_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The example plugin as an installed distribution: its module and a dist-info declaring
    its entry points, on sys.path for this test only (faster than pip, nothing left behind)."""
    site = tmp_path / "site"
    info = site / "chariot_slug_transform-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: chariot-slug-transform\nVersion: 0.1.0\n"
    )
    entries = [f"{name} = chariot_slug_transform:{name}" for name in FUNCTIONS]
    (info / "entry_points.txt").write_text("[chariot.transforms]\n" + "\n".join(entries) + "\n")
    monkeypatch.syspath_prepend(str(PLUGIN))
    monkeypatch.syspath_prepend(str(site))
    import chariot_slug_transform

    yield chariot_slug_transform
    sys.modules.pop("chariot_slug_transform", None)


# -- the project file ------------------------------------------------------------------------


def test_an_unknown_function_names_its_key_path_and_the_installed_functions() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_project(PROJECT, file="shop.toml")  # the plugin is not installed

    assert raised.value.exit_code == ExitCode.USAGE
    assert str(raised.value).startswith(
        "shop.toml: tables.books.transforms[0].function: no Python transform 'slugify' is "
        "installed (the 'chariot.transforms' entry point group holds: "
    )
    assert str(raised.value).endswith("(and 2 more problems)")
    assert "tables.books.transforms[1].function: no Python transform 'words'" in str(
        raised.value.hint
    )


def test_with_the_plugin_only_the_unknown_function_is_named(slug_plugin: Any) -> None:
    text = PROJECT.replace('function = "words"', 'function = "no_such_thing"')

    with pytest.raises(ConfigError) as raised:
        parse_project(text)

    assert re.search(r"holds: [a-z_, ]*letters, slugify, words", str(raised.value))
    assert "transforms[0]" not in str(raised.value) and raised.value.hint is None


def test_the_cli_refuses_the_project_with_exit_2(cli: Any, tmp_path: Path) -> None:
    project = tmp_path / "chariot.toml"
    project.write_text(PROJECT)

    result = cli("--project", str(project), "sync", "--json")

    assert result.exit_code == ExitCode.USAGE
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == 2
    assert "tables.books.transforms[0].function: no Python transform 'slugify'" in error["message"]


def test_outputs_types_and_values(slug_plugin: Any) -> None:
    project = parse_project(PROJECT)
    outputs = {column.name: column for column in table_outputs(project.tables["books"])}

    assert [(c.name, c.postgres, c.neo4j, c.nullable) for c in outputs.values()] == [
        ("id", "integer", "integer", False),
        ("title", "text", "string", True),
        ("slug", "text", "string", True),
        ("words", "text[]", "list<string>", True),
        ("letters", "integer", "integer", True),
    ]
    assert all(outputs[name].in_python for name in ("slug", "words", "letters"))
    assert python_function(outputs["slug"])("Toy Story (1995)") == "toy-story-1995"
    assert python_function(outputs["words"])(None) == []
    assert python_function(outputs["letters"])(None) is None
    with pytest.raises(ValueError, match="Python transform"):
        postgres_expression(outputs["slug"], '"title"')


def test_the_file_writer_writes_python_transforms_back(slug_plugin: Any) -> None:
    project = parse_project(PROJECT)

    again = parse_project(render_project(project))

    assert again.tables["books"].transforms == project.tables["books"].transforms


def test_the_audit_computes_python_columns_in_python(slug_plugin: Any) -> None:
    stream = project_streams(parse_project(PROJECT))[0]
    fields = {field.name: field for field in postgres_canonical(stream).fields}

    assert fields["title"].mysql is not None  # a plain column: compared in SQL
    assert all(fields[name].mysql is None for name in ("slug", "words", "letters"))
    row = (7, "Les Misérables")
    assert fields["slug"].source(row) == "les-mis-rables"
    assert fields["words"].source(row) == ["les", "mis", "rables"]
    assert fields["letters"].source(row) == 13


def test_a_function_that_raises_is_a_data_error_naming_it(slug_plugin: Any) -> None:
    project = parse_project(PROJECT)
    letters = next(c for c in table_outputs(project.tables["books"]) if c.name == "letters")
    function = python_function(letters)

    with pytest.raises(DataError, match=r"Python transform 'letters' failed on the value 42"):
        function(42)  # not text: letters() cannot iterate over it


# -- real servers --------------------------------------------------------------------------------

ROWS = [
    (1, "Toy Story (1995)"),
    (2, None),
    (3, "Amélie: Le Fabuleux Destin d'Amélie Poulain"),
    (4, ""),
    (5, "L'Été 42!"),
]


@pytest.mark.integration
def test_python_columns_sync_into_both_sinks_and_the_audit_finds_and_repairs_damage(
    slug_plugin: Any, settings: Settings
) -> None:
    from chariot.audit import AuditOptions, run_audit
    from chariot.sync import sync
    from tests.audit_support import cypher, differences, postgres
    from tests.sync_support import mysql_execute

    mysql_execute(
        settings.mysql,
        "CREATE TABLE books (id INT PRIMARY KEY, title VARCHAR(80) NULL)",
        ("INSERT INTO books VALUES (%s, %s)", ROWS),
    )
    streams = project_streams(parse_project(PROJECT))
    sinks = ["postgres", "neo4j"]

    def audit(**more: Any) -> Any:
        options = AuditOptions(streams=streams, sinks=tuple(sinks), summaries=False, **more)
        return run_audit(settings, options)

    assert sync(settings, sinks=sinks, streams=streams).ok
    plugin = slug_plugin
    expected = [
        (key, title, plugin.slugify(title), plugin.words(title), plugin.letters(title))
        for key, title in ROWS
    ]
    stored = postgres(
        settings.postgres, "SELECT id, title, slug, words, letters FROM {s}.books ORDER BY id"
    )
    assert [tuple(row) for row in stored] == expected
    nodes = cypher(
        settings,
        "MATCH (b:Book) RETURN b.id, b.title, b.slug, b.words, b.letters ORDER BY b.id",
    )
    # Neo4j keeps no NULL property: an absent one reads as null, an empty list stays one.
    assert [tuple(node) for node in nodes] == expected
    assert audit().clean

    postgres(settings.postgres, "UPDATE {s}.books SET slug = 'toy-story' WHERE id = 1")
    postgres(settings.postgres, "UPDATE {s}.books SET letters = 99 WHERE id = 4")
    cypher(settings, "MATCH (b:Book {id: 3}) SET b.words = ['amelie']")
    found = audit()
    assert differences(found) == {("books", "postgres"): (0, 0, 2), ("books", "neo4j"): (0, 0, 1)}
    keys = {r.sink: sorted(e.key for e in r.examples) for r in found.results if not r.clean}
    assert keys == {"postgres": [[1], [4]], "neo4j": [[3]]}

    repaired = audit(repair=True)
    assert differences(repaired, after_repair=True) == {}
    assert audit().clean
    again = postgres(
        settings.postgres, "SELECT id, slug, letters FROM {s}.books WHERE id IN (1, 4) ORDER BY id"
    )
    assert again == [(1, "toy-story-1995", 8), (4, "", 0)]


@pytest.mark.integration
def test_a_function_failing_during_sync_fails_its_table_naming_the_function(
    slug_plugin: Any, sql_settings: Settings
) -> None:
    from chariot.sync import sync
    from tests.sync_support import mysql_execute

    mysql_execute(
        sql_settings.mysql,
        "CREATE TABLE counts (id INT PRIMARY KEY, n INT NOT NULL)",
        ("INSERT INTO counts VALUES (%s, %s)", [(1, 10)]),
    )
    project = parse_project(
        "[tables.counts]\nkey = ['id']\n"
        "transforms = [{ python = 'n', function = 'letters', to = 'integer', into = 'x' }]\n"
        "[tables.counts.columns]\nid = { type = 'int' }\nn = { type = 'int' }\n"
    )

    result = sync(sql_settings, sinks=["postgres"], streams=project_streams(project))

    assert not result.ok
    (failure,) = result.failures
    assert failure.table == "counts" and failure.kind == "data"
    assert "Python transform 'letters' failed on the value 10: TypeError" in failure.error
