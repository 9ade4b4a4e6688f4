"""The source's catalog read straight from ``information_schema`` over one PyMySQL connection.

``require_source_matches`` runs before every sync. Through SQLAlchemy's inspector it costs
the import of SQLAlchemy, an engine and a dozen catalog queries, more than all the rest of a
sync with nothing to copy. This reader answers the same questions (base tables, columns,
nullability, primary and unique keys, foreign keys and their actions) in four queries. It
only ever says "the project matches": when it finds any problem, or a column type it cannot
read as the inspector would, the caller runs the inspector's full check, whose messages
(and warnings) stay the one reference.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from chariot.project.column_types import UnknownSourceType, parse_source_type
from chariot.project.reflect import ForeignKey, ReflectedColumn, ReflectedTable, SourceSchema


def catalog_schema(connection: Any, description: str, names: list[str]) -> SourceSchema | None:
    """The base tables ``names`` of the connection's database as ``reflect_schema`` reports
    them; None when a column's type is one this reader leaves to the inspector (zerofill,
    MariaDB's JSON check, anything ``parse_source_type`` cannot read)."""
    schema = SourceSchema(description)
    if not names:
        return schema
    marks = ", ".join(["%s"] * len(names))
    within = f"TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE {within}"
            " AND TABLE_TYPE = 'BASE TABLE'",
            names,
        )
        tables = {str(row[0]) for row in cursor.fetchall()}
        cursor.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE"
            f" FROM information_schema.COLUMNS WHERE {within}"
            " ORDER BY TABLE_NAME, ORDINAL_POSITION",
            names,
        )
        column_rows = cursor.fetchall()
        cursor.execute(
            "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME"
            f" FROM information_schema.STATISTICS WHERE {within}"
            " ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX",
            names,
        )
        index_rows = cursor.fetchall()
        cursor.execute(
            "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME,"
            " k.REFERENCED_COLUMN_NAME, r.DELETE_RULE, r.UPDATE_RULE"
            " FROM information_schema.KEY_COLUMN_USAGE k"
            " JOIN information_schema.REFERENTIAL_CONSTRAINTS r"
            " ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA"
            " AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME"
            " AND r.TABLE_NAME = k.TABLE_NAME"
            f" WHERE k.TABLE_SCHEMA = DATABASE() AND k.TABLE_NAME IN ({marks})"
            " AND k.REFERENCED_TABLE_NAME IS NOT NULL"
            " ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
            names,
        )
        foreign_rows = cursor.fetchall()
    connection.commit()
    columns: dict[str, list[ReflectedColumn]] = defaultdict(list)
    for table, column, column_type, nullable in column_rows:
        parsed = _source_type(str(column_type))
        if parsed is None:
            return None
        columns[str(table)].append(ReflectedColumn(str(column), parsed, nullable == "YES"))
    indexes: dict[tuple[str, str], list[str]] = defaultdict(list)
    unique: set[tuple[str, str]] = set()
    for table, index, non_unique, column in index_rows:
        indexes[(str(table), str(index))].append(str(column))
        if not int(non_unique):
            unique.add((str(table), str(index)))
    foreign: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
    for row in foreign_rows:
        foreign[(str(row[0]), str(row[1]))].append(row)
    for name in names:
        if name not in tables:
            continue
        schema.tables[name] = ReflectedTable(
            name=name,
            columns=tuple(columns[name]),
            primary_key=tuple(indexes.get((name, "PRIMARY"), ())),
            unique_keys=tuple(
                sorted(
                    {
                        tuple(indexed)
                        for (table, index), indexed in indexes.items()
                        if table == name and index != "PRIMARY" and (table, index) in unique
                    }
                )
            ),
            foreign_keys=tuple(
                _foreign_key(constraint, rows)
                for (table, constraint), rows in foreign.items()
                if table == name
            ),
        )
    return schema


def _source_type(column_type: str) -> Any:
    """``COLUMN_TYPE`` (``int(11) unsigned``, ``varchar(255)``) as a ``SourceType``, or None
    where this reader and the inspector might disagree."""
    text = column_type.strip()  # enum and set members keep their case
    if "zerofill" in text.lower():
        return None
    try:
        return parse_source_type(text)
    except UnknownSourceType:
        return None


def _foreign_key(name: str, rows: list[tuple[Any, ...]]) -> ForeignKey:
    first = rows[0]
    return ForeignKey(
        name,
        tuple(str(row[2]) for row in rows),
        str(first[3]),
        tuple(str(row[4]) for row in rows),
        on_delete=_rule(first[5]),
        on_update=_rule(first[6]),
    )


def _rule(rule: Any) -> str:
    """As the inspector reports it: MariaDB's SHOW CREATE TABLE leaves RESTRICT (its
    default) out, so the inspector says "no action" (the checks treat both alike)."""
    text = " ".join(str(rule or "no action").lower().split())
    return "no action" if text == "restrict" else text
