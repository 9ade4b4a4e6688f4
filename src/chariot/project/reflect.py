"""What the source database says about its tables, through SQLAlchemy's inspector.

Base tables only (views, triggers and routines are not data to copy). Two things the
inspector does not report are read from ``information_schema``: MariaDB's JSON columns
(a longtext with a ``json_valid`` CHECK) and the names of types SQLAlchemy does not know
(``geometry``, ``inet6``: reported as ``NullType``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chariot.errors import SourceReadError
from chariot.project.column_types import SourceType, from_sqlalchemy

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

_JSON_CHECK = re.compile(r"^\s*json_valid\(\s*`?([^`)]+)`?\s*\)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ReflectedColumn:
    name: str
    type: SourceType
    nullable: bool


@dataclass(frozen=True)
class ForeignKey:
    name: str | None
    columns: tuple[str, ...]
    referred_table: str
    referred_columns: tuple[str, ...]
    # The source's actions, lower case ("cascade", "set null", ...); "no action" when the
    # source reports none (MariaDB does not report RESTRICT, its default, which acts alike).
    on_delete: str = "no action"
    on_update: str = "no action"

    def describe(self, table: str) -> str:
        return (
            f"{table}({', '.join(self.columns)}) -> "
            f"{self.referred_table}({', '.join(self.referred_columns)})"
        )


@dataclass(frozen=True)
class ReflectedTable:
    name: str
    columns: tuple[ReflectedColumn, ...]
    primary_key: tuple[str, ...]
    unique_keys: tuple[tuple[str, ...], ...]  # unique indexes and constraints
    foreign_keys: tuple[ForeignKey, ...]

    def column(self, name: str) -> ReflectedColumn | None:
        return next((c for c in self.columns if c.name == name), None)

    def is_unique(self, columns: tuple[str, ...] | list[str]) -> bool:
        """Whether the columns contain the primary key or a unique key of NOT NULL columns."""
        wanted = set(columns)
        keys = [self.primary_key] if self.primary_key else []
        keys += [k for k in self.unique_keys if all(self._not_null(c) for c in k)]
        return any(key and set(key) <= wanted for key in keys)

    def _not_null(self, name: str) -> bool:
        column = self.column(name)
        return column is not None and not column.nullable


@dataclass
class SourceSchema:
    description: str  # the source's redacted address
    tables: dict[str, ReflectedTable] = field(default_factory=dict)


def reflect_schema(
    engine: Engine, description: str, names: list[str] | None = None
) -> SourceSchema:
    """Every base table of the source (or only ``names``), with keys and column types."""
    import sqlalchemy

    try:
        with engine.connect() as connection, _unknown_types_tolerated():
            inspector = sqlalchemy.inspect(connection)
            all_names = inspector.get_table_names()
            json_columns = _mariadb_json_columns(connection)
            raw_types = _raw_types(connection)
            schema = SourceSchema(description)
            for name in all_names if names is None else [n for n in all_names if n in names]:
                schema.tables[name] = _table(inspector, name, json_columns, raw_types)
            return schema
    except sqlalchemy.exc.SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        raise SourceReadError(f"reading the source's schema failed: {cause}") from error


@contextmanager
def _unknown_types_tolerated() -> Iterator[None]:
    """The inspector warns about each type it does not know; we report them ourselves."""
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Did not recognize type", category=SAWarning)
        yield


def _table(
    inspector: Any,
    name: str,
    json_columns: set[tuple[str, str]],
    raw_types: dict[tuple[str, str], str],
) -> ReflectedTable:
    columns = tuple(
        ReflectedColumn(
            column["name"],
            from_sqlalchemy(
                column["type"],
                is_json=(name, column["name"]) in json_columns,
                raw_name=raw_types.get((name, column["name"]), ""),
            ),
            bool(column["nullable"]),
        )
        for column in inspector.get_columns(name)
    )
    unique = {tuple(i["column_names"]) for i in inspector.get_indexes(name) if i.get("unique")}
    unique |= {tuple(u["column_names"]) for u in inspector.get_unique_constraints(name)}
    return ReflectedTable(
        name=name,
        columns=columns,
        primary_key=tuple(inspector.get_pk_constraint(name).get("constrained_columns") or ()),
        unique_keys=tuple(sorted(unique)),
        foreign_keys=tuple(
            ForeignKey(
                fk.get("name"),
                tuple(fk["constrained_columns"]),
                fk["referred_table"],
                tuple(fk["referred_columns"]),
                on_delete=_action(fk, "ondelete"),
                on_update=_action(fk, "onupdate"),
            )
            for fk in inspector.get_foreign_keys(name)
        ),
    )


def _action(foreign_key: dict[str, Any], option: str) -> str:
    """A foreign key's ON DELETE/ON UPDATE action as SQLAlchemy reports it, lower case."""
    reported = (foreign_key.get("options") or {}).get(option)
    return " ".join(str(reported).lower().split()) if reported else "no action"


def _mariadb_json_columns(connection: Connection) -> set[tuple[str, str]]:
    """(table, column) of MariaDB's JSON columns: their CHECK is ``json_valid(`col`)``."""
    if not getattr(connection.dialect, "is_mariadb", False):
        return set()  # MySQL 8 reports JSON as JSON
    rows = connection.exec_driver_sql(
        "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
        " WHERE CONSTRAINT_SCHEMA = DATABASE()"
    ).fetchall()
    found = set()
    for table, _, clause in rows:
        match = _JSON_CHECK.match(str(clause))
        if match:
            found.add((str(table), match.group(1)))
    return found


def _raw_types(connection: Connection) -> dict[tuple[str, str], str]:
    """The server's type name of every column, for those SQLAlchemy does not know."""
    if connection.dialect.name not in ("mysql", "mariadb"):
        return {}
    rows = connection.exec_driver_sql(
        "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = DATABASE()"
    ).fetchall()
    return {(str(table), str(column)): str(kind) for table, column, kind in rows}


def binary_tinyints(engine: Engine, table: ReflectedTable) -> set[str]:
    """The ``tinyint(1)`` columns of ``table`` holding nothing but 0, 1 and NULL (one scan)."""
    import sqlalchemy

    candidates = [c.name for c in table.columns if c.type.is_tinyint1]
    if not candidates:
        return set()
    quote = engine.dialect.identifier_preparer.quote
    probes = ", ".join(
        f"MAX(CASE WHEN {quote(name)} NOT IN (0, 1) THEN 1 ELSE 0 END)" for name in candidates
    )
    try:
        with engine.connect() as connection:
            row = connection.exec_driver_sql(f"SELECT {probes} FROM {quote(table.name)}").one()
    except sqlalchemy.exc.SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        raise SourceReadError(f"reading {table.name} failed: {cause}") from error
    return {name for name, other in zip(candidates, row, strict=True) if not other}
