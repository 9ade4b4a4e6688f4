"""Transforms as data compute in PostgreSQL exactly what they compute in Python, and the
MovieLens ones exactly what today's hand-written SQL computes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chariot.config import PostgresSettings
from chariot.connections import postgres_connection
from chariot.project import load_project, parse_project
from chariot.project.expressions import postgres_expression, python_function
from chariot.project.outputs import OutputColumn, table_outputs
from tests.movielens_rules import postgres_genres_sql, postgres_year_sql

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[1] / "examples/movielens/chariot.toml"

TITLES = [
    None,
    "",
    "Heat (1995)",
    "Heat (1995) ",
    "Heat (1995)\n",
    "Heat (1995)\u2003",  # an em space is not ASCII whitespace: no year
    "Babylon 5",
    "Death Note: Desu nôto (2006–2007)",
    "(1999) Remake",
    "It's (2001)",
    "Pi (١٩٩٨)",  # Arabic-Indic digits are not [0-9]
]
GENRES = [None, "", "(no genres listed)", "Action", "Action|Comedy", "A||B", "A|", "|"]


def _evaluate(settings: PostgresSettings, expression: str, values: list[Any]) -> list[Any]:
    with postgres_connection(settings) as connection:
        rows = connection.execute(
            f"SELECT {expression} FROM unnest(%s::text[]) WITH ORDINALITY AS v(value, n) "
            "ORDER BY n",
            (values,),
        ).fetchall()
    return [row[0] for row in rows]


def _column(name: str) -> OutputColumn:
    project = load_project(EXAMPLE)
    return next(c for c in table_outputs(project.tables["movies"]) if c.name == name)


def test_movielens_year_in_postgres_equals_python_and_todays_sql(
    postgres_settings: PostgresSettings,
) -> None:
    ours = _evaluate(postgres_settings, postgres_expression(_column("year"), "value"), TITLES)
    today = _evaluate(postgres_settings, postgres_year_sql("value"), TITLES)
    python = [python_function(_column("year"))(title) for title in TITLES]
    assert ours == today == python
    assert python[2] == 1995 and python[5] is None


def test_movielens_genres_in_postgres_equal_python_and_todays_sql(
    postgres_settings: PostgresSettings,
) -> None:
    ours = _evaluate(postgres_settings, postgres_expression(_column("genres"), "value"), GENRES)
    today = _evaluate(postgres_settings, postgres_genres_sql("value"), GENRES)
    python = [python_function(_column("genres"))(genres) for genres in GENRES]
    assert ours == today == python


def test_group_zero_casts_and_markers_agree(postgres_settings: PostgresSettings) -> None:
    project = parse_project(
        """
        [tables.t]
        key = ["id"]
        transforms = [
          { extract = "code", pattern = '[A-Z]+-[0-9]+', group = 0, into = "whole" },
          { extract = "code", pattern = '-([0-9]+)$', into = "number" },
          { cast = "number", to = "bigint" },
          { split = "code", delimiter = "-", empty = [], into = "parts" },
          { cast = "amount", to = "integer", into = "rounded" },
        ]
        [tables.t.columns]
        id = { type = "int" }
        code = { type = "varchar(20)", nullable = true }
        amount = { type = "varchar(20)", nullable = true }
        """
    )
    outputs = {c.name: c for c in table_outputs(project.tables["t"])}
    codes = [None, "", "AB-12", "x-7", "AB-"]
    for name in ("whole", "number", "parts"):
        ours = _evaluate(postgres_settings, postgres_expression(outputs[name], "value"), codes)
        assert ours == [python_function(outputs[name])(code) for code in codes], name
    amounts = [None, "12", " 7 ", "-3"]
    rounded = outputs["rounded"]
    ours = _evaluate(postgres_settings, postgres_expression(rounded, "value"), amounts)
    assert ours == [python_function(rounded)(amount) for amount in amounts]
