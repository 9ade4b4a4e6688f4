"""The graph model of a project (``[graph]``): node labels and relationship types.

Every column named here is an *output* column of a table (after its transforms).

* A label backed by a table has one node per row, keyed by the table's key
  (``[graph.nodes.Film] table = "film"``); other tables with the same key may add
  properties to those nodes (``extended_by``, like MovieLens' ``links`` on ``Movie``).
* A label keyed by values has one node per distinct value of one or more columns, with no
  table of its own (``User`` from ``ratings.user_id``; ``Genre`` from the list column
  ``movies.genres``: a list contributes each element). Such a node exists while something
  refers to it.
* A relationship is made by the rows of one table: each row links the node its ``from``
  columns name to the node its ``to`` columns name (a NULL there: no relationship; a list:
  one relationship per element). That covers a foreign key (``film.language_id``), a join
  table (``film_actor``) and a link no foreign key declares (MovieLens' ``ratings``).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, model_validator

from chariot.project.base import Strict

NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
Name = Annotated[str, Field(pattern=NAME)]


Properties = dict[Name, str]  # property name -> output column


class NodeExtension(Strict):
    """A table keyed like the label whose rows add properties to its nodes."""

    table: str = Field(description="a project table with the same key as the label's table")
    properties: Properties = Field(
        default_factory=dict, description="property name -> column of this table"
    )


class NodeLabel(Strict):
    """A node label: one node per row of a table, or one per distinct value of columns."""

    table: str | None = Field(None, description="one node per row of this table")
    key: list[Name] = Field(
        default_factory=list,
        description="key property names: with `table`, one per key column (default: the key "
        "columns' names); with `values`, exactly one",
    )
    properties: Properties | None = Field(
        None,
        description="property name -> column; default: every other column of the table, "
        "under its own name",
    )
    values: list[str] = Field(
        default_factory=list,
        description='`"table.column"` references whose distinct values are the nodes (a '
        "list column: each element)",
    )
    extended_by: list[NodeExtension] = Field(
        default_factory=list, description="tables whose rows add properties to these nodes"
    )

    @model_validator(mode="after")
    def _one_origin(self) -> NodeLabel:
        if (self.table is None) == (not self.values):
            raise ValueError("give either table (one node per row) or values, not both")
        if self.values and len(self.key) != 1:
            raise ValueError("a label keyed by values needs key = [one property name]")
        if self.values and (self.properties or self.extended_by):
            raise ValueError("a label keyed by values has only its key property")
        return self


def table_properties(
    label: NodeLabel, outputs: list[str], key_outputs: tuple[str, ...]
) -> Properties:
    """A table-backed label's properties: as written, else every non-key output column."""
    if label.properties is not None:
        return label.properties
    return {property_name(c): c for c in outputs if c not in key_outputs}


def property_name(column: str) -> str:
    """A column name as a property name Cypher needs no quotes for (``zip code`` ->
    ``zip_code``)."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", column).strip("_") or "value"
    return "_" + name if name[0].isdigit() else name


class Endpoint(Strict):
    """One end of a relationship: the node whose key the row's columns hold."""

    label: str = Field(description="a label of `[graph.nodes]`")
    key: list[str] = Field(
        min_length=1, description="columns of the relationship's table, one per key property"
    )


class Relationship(Strict):
    """One relationship type, made by the rows of one table: each row links two nodes."""

    type: str = Field(pattern=NAME, description="the relationship type, e.g. `RATED`")
    table: str = Field(description="the project table whose rows make the relationships")
    from_: Endpoint = Field(alias="from", description="the node it starts from")
    to: Endpoint = Field(description="the node it points to")
    properties: Properties = Field(
        default_factory=dict, description="property name -> column of `table`"
    )
    identity: list[Name] = Field(
        default_factory=list,
        description="properties that tell parallel relationships apart (a tag)",
    )


class Graph(Strict):
    """The graph model: node labels and relationship types."""

    nodes: dict[Name, NodeLabel] = Field(
        default_factory=dict, description="label -> where its nodes come from"
    )
    relationships: list[Relationship] = Field(
        default_factory=list, description="relationship types, one table each"
    )
