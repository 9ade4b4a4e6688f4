"""The Cypher of one table, generated from its ``TablePlan``.

Writes take one list per column (``$c0``, ``$c1``... walked by ``UNWIND range(0, $rows -
1) AS i``): in measurements this beat a list of row lists by ~30% and a list of maps by
~40%. A relationship end that may be NULL or a list goes as a per-row list of keys
(``$e2``: ``[]`` for NULL, one key per element), unwound in a unit subquery so the row
count never multiplies. Names are always quoted with backticks: a label may be a keyword.

Parameters (see ``parameters.py``): ``c<n>`` output column n; ``e<l>`` the keys of the
other end of link l (``e<l>s`` / ``e<l>e`` for its start and end when the row's node is
neither); ``s<l>`` [key..., identity...] per relationship the row makes (stale test);
``f<n>`` the values of feed n; ``m<l>s`` / ``m<l>e`` the distinct keys of the start / end
nodes of a relationship between two nodes neither of which is the row's (``write_new``).

Two writes per table. ``write`` is right whatever the graph holds: it MERGEs, and drops
the relationships a re-synced row no longer makes. ``write_new`` is for rows the sink has
proven new (no relationship of the table exists for them: see ``Neo4jSink.write``): no
stale test, and CREATE for each relationship whose identity the row determines. The
stale test walks from the row's node (a pattern comprehension): a ``MATCH`` with the other
end's label let the planner scan that label's whole index once per row (Sakila's
``payment``: minutes for 16,049 rows).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from chariot.sinks.neo4j.plan import End, Label, Link, RowNode, TablePlan


def quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def key_map(names: Sequence[str], values: Sequence[str]) -> str:
    return "{" + ", ".join(f"{quoted(n)}: {v}" for n, v in zip(names, values, strict=True)) + "}"


def constraint_name(label: Label) -> str:
    """``chariot_movie_id`` for (Movie, movieId), ``chariot_genre_name`` for (Genre, name),
    ``chariot_order_items_order_id_line_no`` for a composite key."""
    name, keys = _snake(label.name), "_".join(_snake(k) for k in label.key)
    return "chariot_" + (keys if keys.startswith(name + "_") else f"{name}_{keys}")


def _snake(text: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text).lower()


def constraint(label: Label) -> str:
    properties = [f"n.{quoted(k)}" for k in label.key]
    target = properties[0] if len(properties) == 1 else "(" + ", ".join(properties) + ")"
    return (
        f"CREATE CONSTRAINT {constraint_name(label)} IF NOT EXISTS "
        f"FOR (n:{quoted(label.name)}) REQUIRE {target} IS UNIQUE"
    )


def placeholder(label: Label, variable: str) -> str | None:
    """The condition under which a node of ``label`` is no longer needed: no relationship
    and (table-backed) none of its owned properties. None when it cannot be told apart
    from a row (a label whose rows may have no non-NULL property)."""
    if label.value_keyed:
        return f"NOT ({variable})--()"
    if not label.placeholder_exact:
        return None
    return " AND ".join([f"NOT ({variable})--()", *_all_null(variable, label.owned)])


def _all_null(variable: str, properties: Sequence[str]) -> list[str]:
    return [f"{variable}.{quoted(p)} IS NULL" for p in properties]


def _any_set(variable: str, properties: Sequence[str]) -> str:
    return " OR ".join(f"{variable}.{quoted(p)} IS NOT NULL" for p in properties)


def _pattern(link: Link, start: str, end: str, relationship: str, identity: str = "") -> str:
    return f"({start})-[{relationship}:{quoted(link.type)}{identity}]->({end})"


class Statements:
    """Cypher for one table; ``param`` names the list parameter of each output column."""

    def __init__(self, plan: TablePlan) -> None:
        self.plan = plan
        self.param = {name: f"c{n}" for n, name in enumerate(plan.outputs)}

    def column(self, name: str, row: str = "i") -> str:
        return f"${self.param[name]}[{row}]"

    # -- which ends go inline ----------------------------------------------------------------

    def inline(self, link: Link, end: End) -> bool:
        """A single non-NULL key per row (and a non-NULL identity): no list, no subquery."""
        if end.row_node is not None:
            return True
        columns = [*end.columns, *(link.properties[p] for p in link.identity)]
        return all(
            not self.plan.outputs[c].nullable and not self.plan.outputs[c].is_list for c in columns
        )

    def fed_by_links(self, label: Label, column: str) -> bool:
        return any(
            end.label.name == label.name and end.columns == (column,)
            for link in self.plan.links
            for end in (link.start, link.end)
        )

    # -- write -------------------------------------------------------------------------------

    def write(self, *, new: bool = False, matched: bool = False) -> str | None:
        if self.plan.is_empty():
            return None
        lines = ["UNWIND range(0, $rows - 1) AS i"]
        for index, node in enumerate(self.plan.nodes):
            lines += self._node(index, node)
        for index, feed in enumerate(self.plan.feeds):
            if self.fed_by_links(feed.label, feed.column):
                continue  # the relationships MERGE these nodes already
            merged = f"(:{quoted(feed.label.name)} {{{quoted(feed.label.key[0])}: k}})"
            lines += ["WITH *", f"CALL (i) {{ UNWIND $f{index}[i] AS k MERGE {merged} }}"]
        for index, link in enumerate(self.plan.links):
            lines += self._link(index, link, new=new, matched=matched)
        return "\n".join(lines)

    def write_matched(self) -> str | None:
        """``write`` for a table that makes only relationships between two nodes neither
        of which is the row's, each end one key: the ends are MERGEd first, once per
        distinct key (``node_merges``), then each row MATCHes them and MERGEs its
        relationship. Right whatever the graph holds (no row node: nothing stale to drop);
        for change capture, where rows are not proven new. None for other tables."""
        if not self.plan.links or self.plan.nodes:
            return None
        if not all(self.fed_by_links(feed.label, feed.column) for feed in self.plan.feeds):
            return None
        if not all(self.premerged(link) for link in self.plan.links):
            return None
        return self.write(matched=True)

    def write_updated(self) -> str | None:
        """For ``write_matched`` tables: SET the properties of relationships that exist
        (rows the log updated in place), MATCHing each one instead of MERGEing it (no
        merge lock; measured ~20% less time per row). Returns ``found``, the rows whose
        every relationship it found; the others are left for ``write_matched``. None for
        other tables."""
        if self.write_matched() is None:
            return None
        lines = ["UNWIND range(0, $rows - 1) AS i"]
        for index, link in enumerate(self.plan.links):
            start, end = quoted(link.start.label.name), quoted(link.end.label.name)
            start_keys = key_map(link.start.label.key, [self.column(c) for c in link.start.columns])
            end_keys = key_map(link.end.label.key, [self.column(c) for c in link.end.columns])
            identity = self._identity(link)
            relationship = _pattern(link, f"a{index}", f"b{index}", f"r{index}", identity)
            lines += [
                f"MATCH (a{index}:{start} {start_keys})",
                f"MATCH (b{index}:{end} {end_keys})",
                f"MATCH {relationship}{self._set(link, f'r{index}')}",
                "WITH DISTINCT i",  # a row's next relationship once, however many matched
            ]
        lines.append("RETURN collect(i) AS found")
        return "\n".join(lines)

    def write_new(self) -> str | None:
        """``write`` for rows proven new; None when it would be the same statement."""
        return self.write(new=True) if self.plan.links else None

    def node_merges(self) -> tuple[tuple[str, str], ...]:
        """(statement, parameter) per end of a relationship between two nodes neither of
        which is the row's: ``write_new`` MATCHes those ends, so their distinct keys are
        MERGEd first (measured: 46.6k relationships/s against 35.9k for MERGE per row)."""
        merges = []
        for index, link in enumerate(self.plan.links):
            if not self.premerged(link):
                continue
            for suffix, end in (("s", link.start), ("e", link.end)):
                keys = key_map(end.label.key, _unwound("k", len(end.columns)))
                parameter = f"m{index}{suffix}"
                merges.append(
                    (
                        f"UNWIND ${parameter} AS k MERGE (:{quoted(end.label.name)} {keys})",
                        parameter,
                    )
                )
        return tuple(merges)

    def premerged(self, link: Link) -> bool:
        """A free relationship with a single key at each end: ``write_new`` MATCHes both."""
        return (
            link.own_end is None and self.inline(link, link.start) and self.inline(link, link.end)
        )

    def determined(self, link: Link) -> bool:
        """Whether two rows never make the same free relationship: the table's key is
        among its ends and identity (else MERGE keeps one, as ``write`` does)."""
        made = {
            *link.start.columns,
            *link.end.columns,
            *(link.properties[p] for p in link.identity),
        }
        return set(self.plan.key_columns) <= made

    def any_made(self) -> str | None:
        """Whether the graph holds any relationship this table makes (returns ``made``)."""
        if not self.plan.links:
            return None
        tests = [
            f"EXISTS {{ MATCH (:{quoted(link.start.label.name)})-[:{quoted(link.type)}]->"
            f"(:{quoted(link.end.label.name)}) }}"
            for link in self.plan.links
        ]
        return "RETURN " + " OR ".join(tests) + " AS made"

    def _node(self, index: int, node: RowNode) -> list[str]:
        keys = key_map(node.label.key, [self.column(c) for c in node.columns])
        lines = [f"MERGE (n{index}:{quoted(node.label.name)} {keys})"]
        if node.properties:
            settings = (
                f"n{index}.{quoted(p)} = {self.column(c)}" for p, c in node.properties.items()
            )
            lines.append("SET " + ", ".join(settings))
        return lines

    def _identity(self, link: Link, row: str = "i") -> str:
        if not link.identity:
            return ""
        return " " + key_map(
            link.identity, [self.column(link.properties[p], row) for p in link.identity]
        )

    def _set(self, link: Link, variable: str) -> str:
        settings = [
            f"{variable}.{quoted(p)} = {self.column(c)}"
            for p, c in link.properties.items()
            if p not in link.identity
        ]
        return " SET " + ", ".join(settings) if settings else ""

    def _link(
        self, index: int, link: Link, *, new: bool = False, matched: bool = False
    ) -> list[str]:
        own = link.own_end
        if own is None:
            return self._free_link(index, link, new=new, matched=matched)
        row_end, other = (link.start, link.end) if own == "start" else (link.end, link.start)
        row = f"n{row_end.row_node}"

        def pattern(other_node: str, relationship: str, identity: str = "") -> str:
            if own == "start":
                return _pattern(link, row, other_node, relationship, identity)
            return _pattern(link, other_node, row, relationship, identity)

        other_label = quoted(other.label.name)
        # A re-synced row drops the relationships it no longer makes (and the nodes only
        # they kept: a genre no movie lists, a placeholder of a changed foreign key).
        lines = []
        if not new:
            condition = self._stale(index, link, other)
            stale = _delete_found(
                pattern("o:" + other_label, "r"), condition, placeholder(other.label, "o")
            )
            lines = ["WITH *", f"CALL ({row}, i) {{ {stale} }}"]
        identity = self._identity(link)
        # A new row's node has none of these relationships, and each other-end key makes
        # one (``parameters`` drops repeated list elements): CREATE cannot double one.
        make = "CREATE" if new else "MERGE"
        if self.inline(link, other):
            keys = key_map(other.label.key, [self.column(c) for c in other.columns])
            lines.append(f"MERGE (o{index}:{other_label} {keys})")
            lines.append(
                f"{make} {pattern(f'o{index}', f'r{index}', identity)}"
                + self._set(link, f"r{index}")
            )
            return lines
        keys = key_map(other.label.key, _unwound("k", len(other.columns)))
        merge = (
            f"UNWIND $e{index}[i] AS k MERGE (o:{other_label} {keys}) "
            f"{make} {pattern('o', 'r', identity)}{self._set(link, 'r')}"
        )
        return [*lines, "WITH *", f"CALL ({row}, i) {{ {merge} }}"]

    def _stale(self, index: int, link: Link, other: End) -> str:
        """True for a relationship of this type at the row's node the row no longer makes."""
        found = [f"o.{quoted(k)}" for k in other.label.key]
        found += [f"r.{quoted(p)}" for p in link.identity]
        if self.inline(link, other):
            wanted = [self.column(c) for c in other.columns]
            wanted += [self.column(link.properties[p]) for p in link.identity]
            return (
                "NOT ("
                + " AND ".join(f"{f} = {w}" for f, w in zip(found, wanted, strict=True))
                + ")"
            )
        if len(found) == 1:
            return f"NOT {found[0]} IN $e{index}[i]"
        return f"NOT [{', '.join(found)}] IN $s{index}[i]"

    def _free_link(
        self, index: int, link: Link, *, new: bool = False, matched: bool = False
    ) -> list[str]:
        """A relationship between two nodes neither of which is the row's (ratings)."""
        start, end = quoted(link.start.label.name), quoted(link.end.label.name)
        identity = self._identity(link)
        if self.inline(link, link.start) and self.inline(link, link.end):
            start_keys = key_map(link.start.label.key, [self.column(c) for c in link.start.columns])
            end_keys = key_map(link.end.label.key, [self.column(c) for c in link.end.columns])
            if new or matched:
                # Both ends were MERGEd just before (``node_merges``): MATCH seeks them.
                make = "CREATE" if self.determined(link) and not matched else "MERGE"
                return [
                    f"MATCH (a{index}:{start} {start_keys})",
                    f"MATCH (b{index}:{end} {end_keys})",
                    f"{make} {_pattern(link, f'a{index}', f'b{index}', f'r{index}', identity)}"
                    + self._set(link, f"r{index}"),
                ]
            return [
                f"MERGE (a{index}:{start} {start_keys})",
                f"MERGE (b{index}:{end} {end_keys})",
                f"MERGE {_pattern(link, f'a{index}', f'b{index}', f'r{index}', identity)}"
                + self._set(link, f"r{index}"),
            ]
        start_keys = key_map(link.start.label.key, _unwound("ka", len(link.start.columns)))
        end_keys = key_map(link.end.label.key, _unwound("kb", len(link.end.columns)))
        merge = (
            f"UNWIND $e{index}s[i] AS ka UNWIND $e{index}e[i] AS kb "
            f"MERGE (a:{start} {start_keys}) MERGE (b:{end} {end_keys}) "
            f"MERGE {_pattern(link, 'a', 'b', 'r', identity)}{self._set(link, 'r')}"
        )
        return ["WITH *", f"CALL (i) {{ {merge} }}"]

    # -- delete by key (audit --repair) ------------------------------------------------------

    def deletes(self) -> tuple[str, ...]:
        """Statements taking ``$keys`` (lists in key order, as graph values); each returns
        ``deleted``, and the first one's is the number of rows deleted."""
        statements = [self._delete_node(index, node) for index, node in enumerate(self.plan.nodes)]
        statements += [
            statement
            for link in self.plan.links
            if link.own_end is None and (statement := self._delete_link(link)) is not None
        ]
        return tuple(statements)

    def undeletable(self) -> tuple[str, ...]:
        """Relationship types of a table backing no label whose rows its key does not
        identify: a delete by key cannot find them (only a full refresh removes them)."""
        return tuple(
            link.type
            for link in self.plan.links
            if link.own_end is None and self._delete_link(link) is None
        )

    def _key(self, columns: Sequence[str]) -> list[str] | None:
        """``key[n]`` for each column, or None when one is not a key column."""
        keys = self.plan.key_columns
        if not all(c in keys for c in columns):
            return None
        return [f"key[{keys.index(c)}]" for c in columns]

    def _delete_node(self, index: int, node: RowNode) -> str:
        keys = self._key(node.columns)
        assert keys is not None  # a row's node is keyed by the row's key
        lines = [
            "UNWIND $keys AS key",
            f"MATCH (n:{quoted(node.label.name)} {key_map(node.label.key, keys)})",
        ]
        properties = list(node.properties)
        if any(not self.plan.outputs[c].nullable for c in node.properties.values()):
            # Only nodes that hold the row (not a placeholder) count as deleted rows.
            lines.append(f"WHERE {_any_set('n', properties)}")
        for link in self.plan.links:
            row_end, other = (
                (link.start, link.end) if link.own_end == "start" else (link.end, link.start)
            )
            if link.own_end is None or row_end.row_node != index:
                continue
            other_node = f"o:{quoted(other.label.name)}"
            arrow = (
                _pattern(link, "n", other_node, "r")
                if link.own_end == "start"
                else _pattern(link, other_node, "n", "r")
            )
            found = _delete_found(arrow, None, placeholder(other.label, "o"))
            lines.append(f"CALL (n) {{ {found} }}")
        if properties:
            lines.append("REMOVE " + ", ".join(f"n.{quoted(p)}" for p in properties))
        if node.own or node.label.placeholder_exact:
            gone = " AND ".join(["NOT (n)--()", *_all_null("n", node.others)])
            lines += ["WITH n", f"CALL (n) {{ WITH n WHERE {gone} DELETE n }}"]
        lines.append("RETURN count(*) AS deleted")
        return "\n".join(lines)

    def _delete_link(self, link: Link) -> str | None:
        """A relationship whose ends and identity the key alone determines; else None (it
        is removed by a full refresh only)."""
        start, end = self._key(link.start.columns), self._key(link.end.columns)
        identity = self._key([link.properties[p] for p in link.identity])
        if start is None or end is None or identity is None:
            return None
        identity_map = " " + key_map(link.identity, identity) if link.identity else ""
        start_node = f"a:{quoted(link.start.label.name)} {key_map(link.start.label.key, start)}"
        end_node = f"b:{quoted(link.end.label.name)} {key_map(link.end.label.key, end)}"
        # Each end MATCHed on its own: one index seek each. In one pattern the planner
        # scanned the start label's whole index per key (5,000 ratings deleted: 3M rows).
        lines = [
            "UNWIND $keys AS key",
            f"MATCH ({start_node})",
            f"MATCH ({end_node})",
            f"MATCH {_pattern(link, 'a', 'b', 'r', identity_map)}",
            "DELETE r",
            "WITH a, b",
        ]
        for variable, label in (("a", link.start.label), ("b", link.end.label)):
            cleanup = placeholder(label, variable)
            if cleanup:
                lines.append(
                    f"CALL ({variable}) {{ WITH {variable} WHERE {cleanup} DELETE {variable} }}"
                )
        lines.append("RETURN count(*) AS deleted")
        return "\n".join(lines)

    # -- full refresh (auto-commit, CALL {} IN TRANSACTIONS keeps each delete small) -------

    def refresh(self, of_rows: int) -> tuple[str, ...]:
        """Remove what the table owns, then the nodes nothing needs any more."""
        batched = f"IN TRANSACTIONS OF {of_rows} ROWS"
        statements = [
            f"MATCH (:{quoted(link.start.label.name)})-[r:{quoted(link.type)}]->"
            f"(:{quoted(link.end.label.name)}) CALL (r) {{ DELETE r }} {batched}"
            for link in self.plan.links
        ]
        own_labels = set()
        for node in self.plan.nodes:
            label = quoted(node.label.name)
            if node.properties:
                removed = ", ".join(f"n.{quoted(p)}" for p in node.properties)
                statements.append(
                    f"MATCH (n:{label}) WHERE {_any_set('n', list(node.properties))} "
                    f"CALL (n) {{ REMOVE {removed} }} {batched}"
                )
            if node.own:
                own_labels.add(node.label.name)
                gone = " AND ".join(["NOT (n)--()", *_all_null("n", node.others)])
                statements.append(
                    f"MATCH (n:{label}) WHERE {gone} CALL (n) {{ DELETE n }} {batched}"
                )
        for swept in self.plan.labels.values():
            condition = placeholder(swept, "n")
            if condition and swept.name not in own_labels:
                statements.append(
                    f"MATCH (n:{quoted(swept.name)}) WHERE {condition} "
                    f"CALL (n) {{ DELETE n }} {batched}"
                )
        return tuple(statements)


def _delete_found(pattern: str, condition: str | None, cleanup: str | None) -> str:
    """Delete the relationships ``r`` of ``pattern`` (from a bound node to ``o``) that meet
    ``condition``, then each ``o`` that ``cleanup`` says nothing needs any more. A pattern
    comprehension walks from the bound node; a MATCH let the planner scan ``o``'s label."""
    where = f" WHERE {condition}" if condition else ""
    lines = (
        f"UNWIND [{pattern}{where} | [r, o]] AS found WITH found[0] AS r, found[1] AS o DELETE r"
    )
    if cleanup:
        lines += f" WITH DISTINCT o WHERE {cleanup} DELETE o"
    return lines


def _unwound(variable: str, size: int) -> list[str]:
    """The key values of one unwound element: ``k`` itself, or ``k[0]``, ``k[1]``..."""
    return [variable] if size == 1 else [f"{variable}[{n}]" for n in range(size)]
