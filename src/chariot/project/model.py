"""The project file as data: tables, their columns and transforms (``[tables.*]``).

Everything under ``[tables]`` names *source* columns; transforms then turn them into the
table's output columns (what PostgreSQL stores and what the graph and the aggregations
refer to, see ``chariot.project.outputs``). ``[graph]`` and ``[aggregations]`` live in
their own modules. Shape and types are checked here; references between the parts
(a key column that does not exist, a relationship to an undefined label) are checked by
``chariot.project.references`` once the whole file is read.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)

from chariot.project.aggregations import Aggregation
from chariot.project.base import Strict
from chariot.project.column_types import (
    NEO4J_TYPES,
    POSTGRES_TYPE,
    SourceType,
    UnknownSourceType,
    map_source_type,
    parse_source_type,
)
from chariot.project.graph import Graph

PROJECT_FORMAT: Literal[1] = 1
# PostgreSQL identifiers: the tables Chariot creates are named after the project's tables.
TABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


class Column(Strict):
    """One source column: its source type, its sink types, and the rules a value must meet."""

    type: str = Field(
        description="source type as MySQL spells it, e.g. `smallint unsigned`, `decimal(4,2)`"
    )
    postgres: str | None = Field(
        None, description="the column's PostgreSQL type; default: mapped from `type`"
    )
    neo4j: str | None = Field(
        None, description="the property's Neo4j type; default: mapped from `type`"
    )
    nullable: bool = Field(
        False, description="false: a row with NULL here is rejected; a key column cannot be true"
    )
    min: Decimal | None = Field(
        None, description="smallest value allowed (checked only when `max` is given too)"
    )
    max: Decimal | None = Field(
        None, description="largest value allowed (checked only when `min` is given too)"
    )
    step: Decimal | None = Field(
        None, gt=0, description="a value that is not a multiple of this is rejected"
    )

    @field_validator("type")
    @classmethod
    def _normalised_type(cls, value: str) -> str:
        try:
            return parse_source_type(value).render()
        except UnknownSourceType as error:
            raise ValueError(str(error)) from None

    @field_validator("postgres")
    @classmethod
    def _postgres_type(cls, value: str | None) -> str | None:
        if value is not None and not POSTGRES_TYPE.match(value):
            raise ValueError(f"expected a PostgreSQL type Chariot writes, got {value!r}")
        return value

    @field_validator("neo4j")
    @classmethod
    def _neo4j_type(cls, value: str | None) -> str | None:
        if value is not None and value not in NEO4J_TYPES:
            raise ValueError(f"expected one of {', '.join(NEO4J_TYPES)}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _mapped_defaults(self) -> Column:
        if self.postgres is not None and self.neo4j is not None:
            return self
        mapped = map_source_type(self.source_type)
        if mapped is None:
            raise ValueError(
                f"type {self.type!r} has no PostgreSQL/Neo4j mapping: give postgres and "
                "neo4j types explicitly, or leave the column out"
            )
        self.postgres = self.postgres or mapped.postgres
        self.neo4j = self.neo4j or mapped.neo4j
        return self

    @property
    def source_type(self) -> SourceType:
        return parse_source_type(self.type)


# -- transforms: each names the column it reads by its own kind key --------------------------

INTO = "write the result to a new column of this name; default: replace the column"
CastTarget = Literal["smallint", "integer", "bigint", "numeric", "double precision", "text"]


class Split(Strict):
    """``"A|B"`` -> ``["A", "B"]``; NULL, ``""`` and each ``empty`` marker -> ``[]``."""

    split: str = Field(description="the column to split (text)")
    delimiter: str = Field(min_length=1, description="the text between two elements")
    empty: list[str] = Field(
        default_factory=list, description='values that also mean "no elements"'
    )
    into: str | None = Field(None, description=INTO)


class Extract(Strict):
    """The text a regular expression's group matches (NULL when it does not match).

    Write the pattern so PostgreSQL, MySQL and Python read it alike: ``[0-9]``, not ``\\d``.
    """

    extract: str = Field(description="the column to read (text)")
    pattern: str = Field(min_length=1, description="the regular expression")
    group: int = Field(1, ge=0, description="the group whose text is the value (0: the match)")
    into: str | None = Field(None, description=INTO)


class Rename(Strict):
    """A column under another name, in the same place (key columns may be renamed)."""

    rename: str = Field(description="the column to rename")
    to: str = Field(min_length=1, max_length=63, description="its new name")


class Cast(Strict):
    """A column converted to another PostgreSQL type (key columns may be cast)."""

    cast: str = Field(description="the column to convert")
    to: CastTarget = Field(description="the type it becomes")
    into: str | None = Field(None, description=INTO)


# What a Python transform may produce: a cast's types, a truth value or a list of text.
PythonTarget = Literal[
    "smallint", "integer", "bigint", "numeric", "double precision", "text", "boolean", "text[]"
]


class Python(Strict):
    """A column's value passed to a Python function a plugin registers under the
    ``chariot.transforms`` entry point group (see [Plugins](../plugins.md#python-transforms)).
    PostgreSQL's value is computed in Python row by row, and the audit compares it in Python.
    """

    python: str = Field(description="the column to read (any type; a NULL arrives as None)")
    function: str = Field(min_length=1, description="the name the function is registered under")
    to: PythonTarget = Field(description="the PostgreSQL type of what the function returns")
    into: str | None = Field(None, description=INTO)


TRANSFORM_KINDS = ("split", "extract", "rename", "cast", "python")
AnyTransform = Split | Extract | Rename | Cast | Python


def _transform_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return type(value).__name__.lower()
    if isinstance(value, dict):
        return next((kind for kind in TRANSFORM_KINDS if kind in value), None)
    return None


Transform = Annotated[
    Annotated[Split, Tag("split")]
    | Annotated[Extract, Tag("extract")]
    | Annotated[Rename, Tag("rename")]
    | Annotated[Cast, Tag("cast")]
    | Annotated[Python, Tag("python")],
    Discriminator(
        _transform_kind,
        custom_error_type="transform_kind",
        custom_error_message=(
            "expected a transform: a table with one of the keys " + ", ".join(TRANSFORM_KINDS)
        ),
    ),
]


def transform_column(transform: AnyTransform) -> str:
    """The column a transform reads."""
    if isinstance(transform, Split):
        return transform.split
    if isinstance(transform, Extract):
        return transform.extract
    if isinstance(transform, Rename):
        return transform.rename
    if isinstance(transform, Python):
        return transform.python
    return transform.cast


# What the source does to referring rows when a referenced row is deleted or its key changes.
ForeignKeyAction = Literal["cascade", "set null", "set default", "restrict", "no action"]


class TableReference(Strict):
    """Each row of the table points at one row of another table (a foreign key, declared
    or not): synced after it, and rows whose referenced row is absent are audit notes.

    ``on_delete``/``on_update`` are the source's foreign-key actions: their changes are not
    in the binary log, so change capture applies them itself."""

    table: str = Field(min_length=1, description="the referenced project table")
    columns: list[str] = Field(
        min_length=1,
        description="this table's source columns, in the order of the referenced table's key",
    )
    on_delete: ForeignKeyAction = Field(
        "no action",
        description="the foreign key's `ON DELETE` action in the source (`chariot init` "
        "reads it); change capture applies it to the sinks",
    )
    on_update: ForeignKeyAction = Field(
        "no action",
        description="the foreign key's `ON UPDATE` action in the source, likewise",
    )


class Table(Strict):
    """One source table: its key, its columns (in source order) and its transforms."""

    source: str | None = Field(
        None, description="the table's name in the source; default: the project's name for it"
    )
    key: list[str] = Field(
        min_length=1, description="the source columns that identify a row, in key order"
    )
    depends_on: list[str] = Field(
        default_factory=list,
        description="project tables to sync before this one (besides those it references)",
    )
    references: list[TableReference] = Field(
        default_factory=list,
        description="the tables this one's rows point at (foreign keys, declared or not)",
    )
    columns: dict[str, Column] = Field(
        min_length=1, description="source column name -> column, in source order"
    )
    transforms: list[Transform] = Field(
        default_factory=list, description="transforms, applied in the order written"
    )


class Project(Strict):
    """A whole ``chariot.toml``."""

    format: Literal[1] = Field(PROJECT_FORMAT, description="the version of the file's format")
    name: str | None = Field(None, description="a name for the project, for people to read")
    tables: dict[Annotated[str, Field(pattern=TABLE_NAME)], Table] = Field(
        min_length=1, description="table name -> table; PostgreSQL's table has this name"
    )
    graph: Graph = Field(default_factory=Graph, description="the graph model; default: none")
    aggregations: dict[Annotated[str, Field(pattern=TABLE_NAME)], Aggregation] = Field(
        default_factory=dict, description="summary table name -> aggregation"
    )

    # The file it was read from, for messages (not part of the file's content).
    _file: str = PrivateAttr(default="chariot.toml")

    @property
    def file(self) -> str:
        return self._file

    def __eq__(self, other: object) -> bool:
        # The same content read from two files is the same project.
        if not isinstance(other, Project):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable, like every pydantic model

    def source_table(self, name: str) -> str:
        return self.tables[name].source or name
