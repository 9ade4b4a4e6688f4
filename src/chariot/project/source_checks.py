"""A project checked against the live source: one clear problem per mismatch.

Cheap by design: only the source's catalog is read (tables, columns, primary keys and
unique indexes), never its rows. A key counts as unique when it contains the primary key
or a unique index of NOT NULL columns; anything else may hold duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from chariot.config import Settings
from chariot.project.model import Project
from chariot.project.references import Problem, check_references
from chariot.project.reflect import SourceSchema, reflect_schema

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

# Mismatches a key-based sync can live with (logged, not raised): a column type (the reader
# converts what it gets) and a foreign-key action (only change capture applies them).
ADVISORY = (".type", ".on_delete", ".on_update")


def check_project(project: Project, settings: Settings) -> list[Problem]:
    """Every problem of ``project``: its own references, then against the source."""
    problems = check_references(project)
    from chariot.connections import source_engine

    engine = source_engine(settings.mysql)
    try:
        wanted = [project.source_table(name) for name in project.tables]
        schema = reflect_schema(engine, settings.mysql.display_url(), wanted)
    finally:
        engine.dispose()
    return problems + source_problems(project, schema)


def source_problems(
    project: Project, schema: SourceSchema, tables: list[str] | None = None
) -> list[Problem]:
    names = project.tables if tables is None else tables
    return [problem for name in names for problem in _table(project, name, schema)]


def require_source_matches(
    project: Project,
    settings: Settings,
    tables: list[str],
    *,
    engine: Engine | Callable[[], Engine] | None = None,
    catalog: Any = None,
) -> None:
    """Before a sync reads ``tables``: a table or column the source lacks, or a key that is
    not unique there, is a ``ConfigError`` (exit 2) naming the file and key path, raised
    before anything is written. A column whose type differs is only logged: the reader
    still converts what it gets, and the audit compares the result. ``engine``: the
    reader's own, or what makes it (one engine per command: creating one costs a connection
    and the dialect's start-up queries); default, one made and disposed of here.
    ``catalog``: a PyMySQL connection to the source; when given, ``information_schema`` is
    read through it first, and a source that matches the project exactly needs no engine
    (``chariot.project.source_catalog``)."""
    if catalog is not None and _catalog_matches(project, settings, tables, catalog):
        return
    from chariot.connections import source_engine
    from chariot.project.loading import problems_error

    own = engine is None
    if engine is None:
        used = source_engine(settings.mysql)
    else:
        used = engine() if callable(engine) else engine
    try:
        wanted = [project.source_table(name) for name in tables]
        schema = reflect_schema(used, settings.mysql.display_url(), wanted)
    finally:
        if own:
            used.dispose()
    problems = source_problems(project, schema, tables)
    for problem in problems:
        if problem.path.endswith(ADVISORY):
            log.warning("%s", problem.describe(project.file))
    blocking = [problem for problem in problems if not problem.path.endswith(ADVISORY)]
    if blocking:
        raise problems_error(project.file, blocking)


def _catalog_matches(project: Project, settings: Settings, tables: list[str], catalog: Any) -> bool:
    """Whether the catalog shows no problem at all (not even an advisory one). Anything
    else, a catalog read that fails included, is left to the inspector's full check."""
    from chariot.project.source_catalog import catalog_schema

    wanted = [project.source_table(name) for name in tables]
    try:
        schema = catalog_schema(catalog, settings.mysql.display_url(), wanted)
    except Exception:  # the full check reads the catalog again and reports any failure
        log.debug("catalog read failed; checking through the inspector", exc_info=True)
        return False
    return schema is not None and not source_problems(project, schema, tables)


def _table(project: Project, name: str, schema: SourceSchema) -> Iterator[Problem]:
    table = project.tables[name]
    source_name = project.source_table(name)
    reflected = schema.tables.get(source_name)
    path = f"tables.{name}"
    if reflected is None:
        where = f"{path}.source" if table.source else path
        yield Problem(where, f"the source has no table {source_name!r}")
        return
    for column_name, column in table.columns.items():
        found = reflected.column(column_name)
        if found is None:
            known = ", ".join(c.name for c in reflected.columns)
            yield Problem(
                f"{path}.columns.{column_name}",
                f"the source table {source_name} has no column {column_name!r}; it has {known}",
            )
        elif found.type.render() != column.type:
            yield Problem(
                f"{path}.columns.{column_name}.type",
                f"the source's column is {found.type.render()}, not {column.type}",
            )
    yield from _actions(project, name, schema)
    if all(reflected.column(k) for k in table.key) and not reflected.is_unique(table.key):
        yield Problem(
            f"{path}.key",
            f"({', '.join(table.key)}) is not unique in the source table {source_name}: "
            "it contains neither its primary key nor a unique index of NOT NULL columns",
        )


def _actions(project: Project, name: str, schema: SourceSchema) -> Iterator[Problem]:
    """A reference whose source foreign key has other ON DELETE/ON UPDATE actions: change
    capture would apply the wrong ones (the log lacks their changes)."""
    reflected = schema.tables[project.source_table(name)]
    for position, reference in enumerate(project.tables[name].references):
        if reference.table not in project.tables:
            continue
        referred = project.source_table(reference.table)
        foreign_key = next(
            (
                fk
                for fk in reflected.foreign_keys
                if fk.referred_table == referred and set(fk.columns) == set(reference.columns)
            ),
            None,
        )
        if foreign_key is None:
            continue  # declared in the project only: nothing to compare with
        for action in ("on_delete", "on_update"):
            theirs, ours = getattr(foreign_key, action), getattr(reference, action)
            if _meaning(theirs) != _meaning(ours):
                yield Problem(
                    f"tables.{name}.references[{position}].{action}",
                    f"the source's foreign key {foreign_key.describe(reflected.name)} has "
                    f"{action} = {theirs!r}, not {ours!r}",
                )


def _meaning(action: str) -> str:
    # RESTRICT and NO ACTION both refuse at once in MySQL/MariaDB, which reports neither.
    return "no action" if action == "restrict" else action
