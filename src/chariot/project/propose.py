"""A first project proposed from a reflected source: the tables, and a graph.

* Every base table with a primary key becomes a project table, its columns with their
  mapped types; a column whose type has no mapping is left out with a note (a table whose
  key has such a column is left out).
* A join table (its primary key is exactly two foreign keys, like Sakila's ``film_actor``)
  becomes a relationship between the two tables' nodes, its other columns properties.
* Every other table becomes a label keyed by its primary key (composite keys included),
  every other column a property (the default when ``properties`` is not written). Each
  foreign key to such a table becomes a relationship named after its column(s)
  (``language_id`` -> ``LANGUAGE``), so two foreign keys to the same table are two
  relationship types.
"""

from __future__ import annotations

import re
from typing import get_args

from chariot.errors import ConfigError
from chariot.project.column_types import map_source_type
from chariot.project.graph import Endpoint, Graph, NodeLabel, Relationship, property_name
from chariot.project.model import (
    TABLE_NAME,
    Column,
    ForeignKeyAction,
    Project,
    Table,
    TableReference,
)
from chariot.project.reflect import ForeignKey, ReflectedTable, SourceSchema
from chariot.project.writer import Notes

NO_KEY = "no primary key: Chariot reads, writes and compares rows by their key"
_NOT_A_NAME = re.compile(r"[^A-Za-z0-9_]+")


def propose_project(
    schema: SourceSchema,
    *,
    booleans: dict[str, set[str]] | None = None,
    graph: bool = True,
    name: str | None = None,
) -> tuple[Project, Notes]:
    """The project for ``schema`` and the notes ``chariot init`` writes into the file.

    ``booleans``: per table, the ``tinyint(1)`` columns found holding only 0 and 1.
    """
    notes = Notes()
    tables: dict[str, Table] = {}
    sources: dict[str, ReflectedTable] = {}
    for reflected in schema.tables.values():
        project_name = _unique(_table_name(reflected.name), set(tables))
        table = _table(reflected, project_name, (booleans or {}).get(reflected.name, set()), notes)
        if table is not None:
            tables[project_name] = table
            sources[project_name] = reflected
    if not tables:
        raise ConfigError(
            f"no table of the source can be synced ({schema.description}): each needs a "
            "primary key",
            hint="; ".join(f"{n}: {why}" for n, why in notes.skipped_tables.items()) or None,
        )
    _resolve_dependencies(tables, sources)
    proposed_graph = _GraphProposal(tables, sources, notes).graph() if graph else Graph()
    return Project(name=name, tables=tables, graph=proposed_graph), notes


def _table_name(source: str) -> str:
    if re.match(TABLE_NAME, source):
        return source
    return (_NOT_A_NAME.sub("_", source).strip("_") or "table")[:63]


def _table(reflected: ReflectedTable, name: str, booleans: set[str], notes: Notes) -> Table | None:
    if not reflected.primary_key:
        notes.skipped_tables[reflected.name] = NO_KEY
        return None
    columns: dict[str, Column] = {}
    for column in reflected.columns:
        mapped = map_source_type(column.type, boolean=column.name in booleans)
        if mapped is None:
            if column.name in reflected.primary_key:
                notes.skipped_tables[reflected.name] = (
                    f"key column {column.name} is {column.type.render()}, which Chariot "
                    "does not map"
                )
                return None
            notes.skipped_columns.setdefault(name, []).append(
                f"skipped: {column.name} ({column.type.render()}): no PostgreSQL/Neo4j mapping"
            )
            continue
        columns[column.name] = Column(
            type=column.type.render(),
            postgres=mapped.postgres,
            neo4j=mapped.neo4j,
            nullable=column.nullable,
        )
        if column.type.is_tinyint1:
            found = "only 0 and 1" if mapped.postgres == "boolean" else "values besides 0 and 1"
            notes.columns[(name, column.name)] = f"{found} in the source: {mapped.postgres}"
    source = None if name == reflected.name else reflected.name
    return Table(source=source, key=list(reflected.primary_key), columns=columns)


def _resolve_dependencies(tables: dict[str, Table], sources: dict[str, ReflectedTable]) -> None:
    """A table references the tables its foreign keys refer to (sync order, orphan notes):
    foreign keys to another table of the project that point at its whole primary key."""
    by_source = {reflected.name: name for name, reflected in sources.items()}
    for name, reflected in sources.items():
        for fk in reflected.foreign_keys:
            referred = by_source.get(fk.referred_table)
            if referred is None or referred == name:
                continue
            key = sources[referred].primary_key
            if set(fk.referred_columns) != set(key):
                continue  # a foreign key to a unique key other than the primary key
            order = {column: i for i, column in enumerate(fk.referred_columns)}
            columns = [fk.columns[order[k]] for k in key]
            tables[name].references.append(
                TableReference(
                    table=referred,
                    columns=columns,
                    on_delete=_known_action(fk.on_delete),
                    on_update=_known_action(fk.on_update),
                )
            )


def _known_action(action: str) -> ForeignKeyAction:
    """The reflected action, or "no action" for one the project file does not know."""
    known: tuple[ForeignKeyAction, ...] = get_args(ForeignKeyAction)
    return next((choice for choice in known if choice == action), "no action")


class _GraphProposal:
    def __init__(
        self, tables: dict[str, Table], sources: dict[str, ReflectedTable], notes: Notes
    ) -> None:
        self.tables = tables
        self.sources = sources
        self.notes = notes
        self.by_source = {reflected.name: name for name, reflected in sources.items()}
        self.join_tables: set[str] = set()
        self.join_tables = {name for name in tables if self._is_join_table(name)}
        self.labels = _unique_labels([n for n in tables if n not in self.join_tables])

    def graph(self) -> Graph:
        nodes = {self.labels[name]: self._label(name) for name in self.labels}
        relationships: list[Relationship] = []
        for name in self.tables:
            if name in self.join_tables:
                relationships.append(self._join_relationship(name, len(relationships)))
            else:
                relationships += self._foreign_key_relationships(name, len(relationships))
        return Graph(nodes=nodes, relationships=relationships)

    def _key_foreign_keys(self, name: str) -> list[ForeignKey]:
        """The foreign keys made of primary key columns, in primary key order."""
        key = self.tables[name].key
        inside = [fk for fk in self.sources[name].foreign_keys if set(fk.columns) <= set(key)]
        return sorted(inside, key=lambda fk: min(key.index(c) for c in fk.columns))

    def _join_shaped(self, name: str) -> bool:
        inside = self._key_foreign_keys(name)
        covered = {column for fk in inside for column in fk.columns}
        return len(inside) == 2 and covered == set(self.tables[name].key)

    def _is_join_table(self, name: str) -> bool:
        """Key = two foreign keys to tables that are nodes (not join tables themselves)."""
        return self._join_shaped(name) and all(
            (target := self._target(fk)) is not None and not self._join_shaped(target[0])
            for fk in self._key_foreign_keys(name)
        )

    def _target(self, fk: ForeignKey) -> tuple[str, list[str]] | None:
        """The table a foreign key refers to, and the referring columns in that table's key
        order; None when the table is not in the project or the key is not its primary key."""
        target = self.by_source.get(fk.referred_table)
        if target is None or target in self.join_tables:
            return None
        key = self.tables[target].key
        if sorted(fk.referred_columns) != sorted(key):
            return None
        by_referred = dict(zip(fk.referred_columns, fk.columns, strict=True))
        return target, [by_referred[column] for column in key]

    def _label(self, name: str) -> NodeLabel:
        table = self.tables[name]
        return NodeLabel(table=name, key=[property_name(column) for column in table.key])

    def _endpoint(self, fk: ForeignKey) -> Endpoint | None:
        target = self._target(fk)
        if target is None:
            return None
        return Endpoint(label=self.labels[target[0]], key=target[1])

    def _foreign_key_relationships(self, name: str, position: int) -> list[Relationship]:
        own = Endpoint(label=self.labels[name], key=list(self.tables[name].key))
        relationships: list[Relationship] = []
        taken: set[str] = set()
        for fk in self.sources[name].foreign_keys:
            other = self._endpoint(fk)
            if other is None:
                continue
            self.notes.relationships[position + len(relationships)] = (
                f"foreign key {fk.describe(self.sources[name].name)}"
            )
            kind = _unique(_relationship_type(fk), taken)
            relationships.append(Relationship(type=kind, table=name, from_=own, to=other))
        return relationships

    def _join_relationship(self, name: str, position: int) -> Relationship:
        table = self.tables[name]
        first, second = (self._endpoint(fk) for fk in self._key_foreign_keys(name))
        assert first is not None and second is not None
        self.notes.relationships[position] = (
            f"join table {self.sources[name].name}: its key is two foreign keys; its other "
            "columns are properties"
        )
        return Relationship(
            type=_relationship_name(name),
            table=name,
            from_=first,
            to=second,
            properties={property_name(c): c for c in table.columns if c not in table.key},
        )


def _unique_labels(tables: list[str]) -> dict[str, str]:
    taken: set[str] = set()
    return {name: _label_name(name, taken=taken) for name in tables}


def _label_name(table: str, *, taken: set[str]) -> str:
    """``film_actor`` -> ``FilmActor`` (numbered if two tables give the same label)."""
    words = [w for w in _NOT_A_NAME.sub("_", table).split("_") if w]
    base = "".join(w[:1].upper() + w[1:] for w in words) or "Node"
    if base[0].isdigit():
        base = "N" + base
    return _unique(base, taken)


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``... when taken (and take it)."""
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}_{number}", number + 1
    taken.add(candidate)
    return candidate


def _relationship_type(fk: ForeignKey) -> str:
    """``language_id`` -> ``LANGUAGE``; ``original_language_id`` -> ``ORIGINAL_LANGUAGE``."""
    if len(fk.columns) == 1:
        stem = re.sub(r"(_id|Id|_ID|ID)$", "", fk.columns[0])
        if stem:
            return _relationship_name(stem)
    return _relationship_name(fk.referred_table)


def _relationship_name(text: str) -> str:
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    name = _NOT_A_NAME.sub("_", snake).strip("_").upper() or "RELATED_TO"
    return "R_" + name if name[0].isdigit() else name
