"""A batch of source rows as the parameters of a table's write statement.

Rows arrive in ``stream.source_columns`` order. Each output column the graph uses becomes
one list (its transforms by ``python_function``, then the Neo4j conversion of its type);
relationship ends that may be NULL or lists become per-row lists of keys. A row whose
value cannot be converted is left out and returned as rejected, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from chariot.project.expressions import python_function
from chariot.sinks.neo4j.plan import End, Link, TablePlan
from chariot.sinks.neo4j.statements import Statements
from chariot.sinks.neo4j.values import column_converter, converter

Rows = Sequence[Sequence[Any]]
Values = dict[str, list[Any]]  # output column -> one converted value per row
# Errors a conversion raises for a value it cannot take (a reject, not a crash).
CONVERSION_ERRORS = (ValueError, TypeError, ArithmeticError)


@dataclass
class Prepared:
    parameters: dict[str, Any]
    rows: int
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (row index, reason)
    # The distinct end keys ``Statements.node_merges`` take (``m<l>s`` / ``m<l>e``).
    distinct: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Column:
    name: str
    position: int  # of its origin in a source row
    compute: Callable[[Any], Any]
    compute_all: Callable[[list[Any]], list[Any]]  # ``compute`` over a column


class BatchParameters:
    def __init__(
        self, plan: TablePlan, statements: Statements, source_columns: Sequence[str]
    ) -> None:
        self.plan = plan
        self.statements = statements
        self.source_columns = list(source_columns)
        self.columns = [_column(plan, name, self.source_columns) for name in _used_columns(plan)]
        self.key_columns = [_column(plan, name, list(source_columns)) for name in plan.key_columns]

    def __call__(self, rows: Rows) -> Prepared:
        values, rejected = self._values(rows)
        count = len(rows) - len(rejected)
        parameters: dict[str, Any] = {"rows": count}
        parameters.update({self.statements.param[name]: column for name, column in values.items()})
        for index, link in enumerate(self.plan.links):
            parameters.update(self._link_lists(index, link, values, count))
        for index, feed in enumerate(self.plan.feeds):
            if not self.statements.fed_by_links(feed.label, feed.column):
                parameters[f"f{index}"] = [_keys([v]) for v in values[feed.column]]
        distinct: dict[str, list[Any]] = {}
        for index, link in enumerate(self.plan.links):
            if self.statements.premerged(link):
                distinct[f"m{index}s"] = _distinct(link.start, values, count)
                distinct[f"m{index}e"] = _distinct(link.end, values, count)
        return Prepared(parameters, count, rejected, distinct)

    def graph_keys(self, keys: Sequence[Sequence[Any]]) -> list[list[Any]]:
        """Source keys (key order) as the values the graph holds them as."""
        return [[c.compute(v) for c, v in zip(self.key_columns, key, strict=True)] for key in keys]

    def output_values(self, names: Sequence[str], values: Sequence[Any]) -> list[Any]:
        """The source values of output columns ``names`` (one each) as the graph holds
        them; raises one of ``CONVERSION_ERRORS`` for a value it cannot hold."""
        return [
            _column(self.plan, name, self.source_columns).compute(value)
            for name, value in zip(names, values, strict=True)
        ]

    def _values(self, rows: Rows) -> tuple[Values, list[tuple[int, str]]]:
        try:
            return self._convert(rows), []
        except CONVERSION_ERRORS:
            pass
        # Some value cannot be converted: find the rows, and load the others.
        good: list[Sequence[Any]] = []
        rejected: list[tuple[int, str]] = []
        for index, row in enumerate(rows):
            for column in self.columns:
                try:
                    column.compute(row[column.position])
                except CONVERSION_ERRORS as error:
                    rejected.append((index, f"{column.name} cannot be stored in Neo4j: {error}"))
                    break
            else:
                good.append(row)
        return self._convert(good), rejected

    def _convert(self, rows: Rows) -> Values:
        return {
            c.name: c.compute_all(list(map(itemgetter(c.position), rows))) for c in self.columns
        }

    def _link_lists(self, index: int, link: Link, values: Values, count: int) -> dict[str, Any]:
        own = link.own_end
        if own is not None:
            other = link.end if own == "start" else link.start
            if self.statements.inline(link, other):
                return {}
            identity = [values[link.properties[p]] for p in link.identity]
            identities = [[column[i] for column in identity] for i in range(count)]
            keys = [
                [] if None in identities[i] else key
                for i, key in enumerate(self._end_keys(other, values, count))
            ]
            lists: dict[str, Any] = {f"e{index}": keys}
            if len(other.label.key) + len(identity) > 1:
                lists[f"s{index}"] = [
                    [[*_as_list(key), *identities[i]] for key in row_keys]
                    for i, row_keys in enumerate(keys)
                ]
            return lists
        if self.statements.inline(link, link.start) and self.statements.inline(link, link.end):
            return {}  # the row's own columns: no per-row lists to build
        identity = [values[link.properties[p]] for p in link.identity]
        identities = [[column[i] for column in identity] for i in range(count)]
        starts = [
            [] if None in identities[i] else key
            for i, key in enumerate(self._end_keys(link.start, values, count))
        ]
        return {f"e{index}s": starts, f"e{index}e": self._end_keys(link.end, values, count)}

    def _end_keys(self, end: End, values: Values, count: int) -> list[list[Any]]:
        """Per row, the keys of the nodes this end links: none for NULL, one per element
        of a list, ``[a, b]`` for a composite key."""
        if len(end.columns) == 1:
            return [_keys([v]) for v in values[end.columns[0]]]
        columns = [values[c] for c in end.columns]
        keys = ([column[i] for column in columns] for i in range(count))
        return [[] if None in key else [key] for key in keys]


def _keys(values: list[Any]) -> list[Any]:
    """A repeated list element is one key: one node, one relationship (``write_new``
    CREATEs one per key)."""
    (value,) = values
    if value is None:
        return []
    if isinstance(value, list):
        return list(dict.fromkeys(element for element in value if element is not None))
    return [value]


def _distinct(end: End, values: Values, count: int) -> list[Any]:
    """The distinct keys of a single-key end over the batch, sorted where they can be (the
    same order in every batch: fewer lock waits should writers ever run side by side)."""
    if len(end.columns) == 1:
        keys: list[Any] = list(dict.fromkeys(values[end.columns[0]]))
    else:
        columns = [values[c] for c in end.columns]
        keys = [list(key) for key in dict.fromkeys(zip(*columns, strict=True))]
    try:
        return sorted(keys)
    except TypeError:
        return keys


def _as_list(key: Any) -> list[Any]:
    return key if isinstance(key, list) else [key]


def _used_columns(plan: TablePlan) -> list[str]:
    used: list[str] = []
    for node in plan.nodes:
        used += [*node.columns, *node.properties.values()]
    for link in plan.links:
        used += [*link.start.columns, *link.end.columns, *link.properties.values()]
    used += [feed.column for feed in plan.feeds]
    return list(dict.fromkeys(used))


def _column(plan: TablePlan, name: str, source_columns: list[str]) -> _Column:
    output = plan.outputs[name]
    convert = converter(output.neo4j)
    position = source_columns.index(output.origin)
    if output.is_plain:
        return _Column(name, position, convert, column_converter(output.neo4j))
    transform = python_function(output)

    def compute(value: Any) -> Any:
        return convert(transform(value))

    return _Column(name, position, compute, lambda values: [compute(v) for v in values])
