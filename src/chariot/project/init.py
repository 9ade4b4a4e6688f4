"""``chariot init``: reflect the source and write a first, commented ``chariot.toml``."""

from __future__ import annotations

import os
import tempfile
from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import BaseModel, Field

from chariot.config import Settings
from chariot.errors import ConfigError
from chariot.project.loading import parse_project, project_path
from chariot.project.model import Project
from chariot.project.propose import propose_project
from chariot.project.reflect import binary_tinyints, reflect_schema
from chariot.project.writer import Notes, render_project

HEADER = (
    "Chariot project, written by `chariot init` from {source}. Edit it freely.",
    "",
    "Under [tables], column names are the source's; `type` is the source type, `postgres`",
    "and `neo4j` what Chariot writes; nullable = false makes a NULL a reject. Transforms",
    "(split, extract, rename, cast) make the output columns PostgreSQL stores; [graph] and",
    "[aggregations] name output columns.",
)


class TableSummary(BaseModel):
    name: str
    key: list[str]
    columns: int


class InitResult(BaseModel):
    path: str
    source: str
    tables: list[TableSummary] = Field(default_factory=list)
    skipped_tables: dict[str, str] = Field(default_factory=dict)
    skipped_columns: list[str] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    relationships: list[str] = Field(default_factory=list)


def reflect_project(
    settings: Settings,
    *,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    graph: bool = True,
) -> Project:
    """The project ``chariot init`` proposes for the source (nothing is written)."""
    return _reflect(settings, include, exclude, graph)[0]


def init_project(
    settings: Settings,
    *,
    path: Path | None = None,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    graph: bool = True,
    force: bool = False,
    example: str | None = None,
) -> InitResult:
    """Write the proposed project to ``path`` (default ``./chariot.toml``); with ``example``,
    write that example project instead of reflecting the source (``EXAMPLES``).

    Never overwrites an existing file unless ``force``; the file is replaced atomically.
    """
    target = project_path(path)
    if target.exists() and not force:
        raise ConfigError(f"{target} exists already", hint="pass --force to overwrite it")
    if example is not None:
        return _write_example(example, target, settings)
    project, notes = _reflect(settings, include, exclude, graph)
    text = render_project(project, notes)
    parse_project(text, file=str(target))  # what we write must read back
    _write_atomically(target, text)
    return _summary(target, settings, project, notes)


def _reflect(
    settings: Settings, include: list[str] | None, exclude: list[str] | None, graph: bool
) -> tuple[Project, Notes]:
    from chariot.connections import source_engine

    engine = source_engine(settings.mysql)
    try:
        schema = reflect_schema(engine, settings.mysql.display_url())
        schema.tables = {
            name: table
            for name, table in schema.tables.items()
            if name in select_tables(list(schema.tables), include, exclude)
        }
        booleans = {name: binary_tinyints(engine, t) for name, t in schema.tables.items()}
    finally:
        engine.dispose()
    project, notes = propose_project(schema, booleans=booleans, graph=graph)
    notes.header = [line.format(source=schema.description) for line in HEADER]
    return project, notes


# Example projects shipped with Chariot: name -> file in the package's ``examples`` folder.
EXAMPLES = {"movielens": "movielens.toml"}


def example_text(name: str) -> str:
    from importlib.resources import files

    if name not in EXAMPLES:
        raise ConfigError(f"unknown example {name!r}", hint=f"examples: {', '.join(EXAMPLES)}")
    return files("chariot").joinpath("examples", EXAMPLES[name]).read_text(encoding="utf-8")


def _write_example(name: str, target: Path, settings: Settings) -> InitResult:
    text = example_text(name)
    project = parse_project(text, file=f"example {name}")
    _write_atomically(target, text)
    return _summary(target, settings, project, Notes())


def select_tables(
    names: list[str], include: list[str] | None, exclude: list[str] | None
) -> list[str]:
    """The names matching any ``include`` pattern (all when none) and no ``exclude`` one.

    Patterns are shell-style (``film_*``); an include pattern matching nothing is an error.
    """
    for pattern in include or []:
        if not any(fnmatchcase(name, pattern) for name in names):
            raise ConfigError(
                f"--include {pattern}: no such table in the source",
                hint=f"tables: {', '.join(names) or 'none'}",
            )
    chosen = [n for n in names if not include or any(fnmatchcase(n, p) for p in include)]
    return [n for n in chosen if not any(fnmatchcase(n, p) for p in exclude or [])]


def _write_atomically(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".chariot-", suffix=".toml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _summary(target: Path, settings: Settings, project: Project, notes: Notes) -> InitResult:
    return InitResult(
        path=str(target),
        source=settings.mysql.display_url(),
        tables=[
            TableSummary(name=name, key=table.key, columns=len(table.columns))
            for name, table in project.tables.items()
        ],
        skipped_tables=notes.skipped_tables,
        skipped_columns=[
            f"{table}: {line}" for table, lines in notes.skipped_columns.items() for line in lines
        ],
        labels=list(project.graph.nodes),
        relationships=[
            f"(:{r.from_.label})-[:{r.type}]->(:{r.to.label})" for r in project.graph.relationships
        ],
    )
