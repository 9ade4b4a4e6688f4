"""Which aggregation groups changed since the promoted summaries: recorded by the
PostgreSQL sink inside its own transactions, read by the next ``chariot aggregate``.

Tables in the sink's schema, created by the first call that needs them (the existence of
the first and the last is what tells ``chariot aggregate`` that every later write is
tracked):

``_chariot_touched_groups``: one row per (aggregation, group key), as version 0.1 recorded
touched groups; still read (and emptied by promotions), no longer written.

``_chariot_touched_group_sets``: one row per statement that records touched groups, with
the (aggregation's) group keys it found as one sorted text array. A change-capture
transaction records them once before the sink deletes/upserts the rows (the groups the old
rows were in, where they may differ) and once after (the groups of the new rows), so a row
moving from one group to another touches both. One row per statement instead of one per
group: at 5M ratings a transaction of 9,000 changed ratings touches some 6,000 user and
movie groups, and inserting them as rows (three index entries each) cost as much as
changing the ratings themselves. A group recorded twice is read once.

``_chariot_incremental_invalid``: tables whose rows changed without their groups being
recorded (key-based batches, repairs, full refreshes): every aggregation reading one is
recomputed in full by the next run.

Both are insert-only for the sink (it never waits on a row lock the aggregation holds);
each row carries the writing transaction's id, so a promotion deletes exactly the rows its
snapshot saw (``pg_visible_in_snapshot``) and keeps those committed meanwhile.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chariot.aggregate.declared import Declared, declared_aggregations, qualified, quoted
from chariot.batch import Key
from chariot.errors import ConfigError
from chariot.streams import Stream

if TYPE_CHECKING:
    from chariot.project.model import Project

TOUCHED = "_chariot_touched_groups"
TOUCHED_SETS = "_chariot_touched_group_sets"
INVALID = "_chariot_incremental_invalid"
TRACKING_TABLES = (TOUCHED, TOUCHED_SETS, INVALID)

_DDL = (
    "CREATE TABLE IF NOT EXISTS {s}." + TOUCHED + " ("
    " seq bigserial PRIMARY KEY, aggregation text NOT NULL, fingerprint text NOT NULL,"
    " group_key text NOT NULL, xact xid8 NOT NULL DEFAULT pg_current_xact_id(),"
    " recorded_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS {s}." + INVALID + " ("
    " seq bigserial PRIMARY KEY, table_name text NOT NULL,"
    " xact xid8 NOT NULL DEFAULT pg_current_xact_id(),"
    " invalidated_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS {s}." + TOUCHED_SETS + " ("
    " seq bigserial PRIMARY KEY, aggregation text NOT NULL, fingerprint text NOT NULL,"
    " group_keys text[] NOT NULL, xact xid8 NOT NULL DEFAULT pg_current_xact_id(),"
    " recorded_at timestamptz NOT NULL DEFAULT now())",
)

_CACHE_SIZE = 8
_declared_cache: OrderedDict[int, tuple[Project, tuple[Declared, ...]]] = OrderedDict()


def record_touched(cursor: Any, schema: str, stream: Stream, keys: list[Key]) -> None:
    """Record, inside the caller's PostgreSQL transaction, the groups of every aggregation
    that the sink's current rows with these source keys of ``stream`` belong to (all of
    them, whether or not the key alone decides them). Call it before the rows change and
    again after; ``TouchedGroups`` does the same work with fewer statements."""
    groups = TouchedGroups(cursor, schema, [(stream, keys)])
    for plan in groups.plans:
        groups.insert(plan)


@dataclass(frozen=True)
class _Plan:
    aggregation: Declared
    stream: Stream
    found: str  # the LATERAL subquery naming each changed key's groups
    arrays: list[list[Any]]  # the changed keys (or the key columns the groups need)
    types: list[str]
    names: list[str]
    before: bool  # the groups may differ before the rows change: record them then too


class TouchedGroups:
    """The touched groups of one sink transaction: ``before_changes`` runs before the sink
    deletes/upserts the rows (the groups the old rows were in), ``after_changes`` after
    (the groups of the new rows), so a row moving from one group to another touches both.

    A group decided by the key alone (ratings' ``movie_id`` for movie_stats) is the same
    before and after, so it is recorded once, after; so is one found through a joined table
    (genres through the movie) unless this transaction changes that table too. Only the
    key columns a group needs travel to the server, each distinct tuple once, and the
    groups found are stored as one array per statement."""

    def __init__(
        self, cursor: Any, schema: str, changed: Sequence[tuple[Stream, list[Key]]]
    ) -> None:
        self.cursor = cursor
        self.schema = schema
        readers = [
            (stream, keys, [d for d in _declared(stream) if stream.name in d.inputs])
            for stream, keys in changed
        ]
        readers = [(stream, keys, found) for stream, keys, found in readers if keys and found]
        self.plans: list[_Plan] = []
        if not readers:
            return
        # An aggregation whose other input is not synced yet has no groups (its first run
        # will be full: the first copy of that table invalidates it).
        inputs = {t for _, _, found in readers for d in found for t in d.inputs}
        missing = _missing_tables(cursor, schema, {*TRACKING_TABLES, *inputs})
        if missing.intersection(TRACKING_TABLES):
            ensure_tracking_tables(cursor, schema)
        changing = {stream.name for stream, _ in changed}
        for stream, keys, found in readers:
            for aggregation in found:
                if not missing.intersection(aggregation.inputs):
                    self.plans.append(_plan(aggregation, stream, keys, schema, changing))

    def before_changes(self) -> None:
        for plan in self.plans:
            if plan.before:
                self.insert(plan)

    def after_changes(self) -> None:
        for plan in self.plans:
            self.insert(plan)

    def insert(self, plan: _Plan) -> None:
        aggregation = plan.aggregation
        unnested = ", ".join(f"%s::{t}[]" for t in plan.types)
        changed = f"changed({', '.join(plan.names)})"
        # No group found (the rows' groups are NULL): no row.
        self.cursor.execute(
            f"INSERT INTO {qualified(self.schema, TOUCHED_SETS)} "
            "(aggregation, fingerprint, group_keys) "
            "SELECT %s, %s, array_agg(found.k ORDER BY found.k) "
            f"FROM (SELECT DISTINCT (grouped.g)::text AS k "
            f"FROM (SELECT DISTINCT * FROM unnest({unnested})) AS {changed}, "
            f"{plan.found}) AS found HAVING count(*) > 0",
            [aggregation.name, aggregation.fingerprint, *plan.arrays],
        )


def _plan(
    aggregation: Declared, stream: Stream, keys: list[Key], schema: str, changing: set[str]
) -> _Plan:
    columns, types = _key_columns(stream, schema)
    names = [f"c{index}" for index in range(len(columns))]
    found = _groups_from_keys(aggregation, stream, schema, columns, names)
    if found is None:
        arrays = [list(values) for values in zip(*keys, strict=True)]
        found = _groups_of_joined_row(aggregation, stream, schema, columns, names)
        if found is None:
            found = _groups_of_rows(aggregation, stream, schema, columns, names)
        return _Plan(aggregation, stream, found, arrays, types, names, before=True)
    # Only the key columns the groups are read from (as _groups_from_keys reads them),
    # each distinct tuple once.
    joined = aggregation.join_table is not None and aggregation.group_joined
    sources = [own for own, _ in aggregation.join_on] if joined else [aggregation.group_source]
    used = [columns.index(source) for source in sources]
    if len(used) == 1:  # the usual case (a movie, a user): no tuple per key
        arrays = [list(dict.fromkeys(map(operator.itemgetter(used[0]), keys)))]
    else:
        needed = dict.fromkeys(map(operator.itemgetter(*used), keys))
        arrays = [list(values) for values in zip(*needed, strict=True)] or [[]] * len(used)
    return _Plan(
        aggregation,
        stream,
        found,
        arrays,
        [types[i] for i in used],
        [names[i] for i in used],
        before=joined and aggregation.join_table in changing,
    )


def _groups_from_keys(
    aggregation: Declared,
    stream: Stream,
    schema: str,
    columns: tuple[str, ...],
    names: list[str],
) -> str | None:
    """The groups straight from the changed keys, without reading the changed table, when
    the key decides them: the group column is a key column (ratings -> movie_stats), or the
    join to the grouping table goes through key columns (ratings -> genre_stats by movie).
    A key whose row does not exist (yet, or any more) then touches a group needlessly:
    recomputing it changes nothing, so the result stays exact. None: not such a case."""
    if aggregation.table != stream.name:
        return None
    by_key = dict(zip(columns, names, strict=True))
    if aggregation.join_table is None or not aggregation.group_joined:
        if aggregation.exploded or aggregation.group_source not in by_key:
            return None
        return f"LATERAL (SELECT changed.{by_key[aggregation.group_source]} AS g) AS grouped"
    if not all(own in by_key for own, _ in aggregation.join_on):
        return None
    on = " AND ".join(
        f"j.{quoted(other)} = changed.{by_key[own]}" for own, other in aggregation.join_on
    )
    return _joined_groups(aggregation, schema, aggregation.join_table, on)


def _groups_of_joined_row(
    aggregation: Declared,
    stream: Stream,
    schema: str,
    columns: tuple[str, ...],
    names: list[str],
) -> str | None:
    """The groups of a changed row of the joined table that holds the group (a movie's
    genres for genre_stats), read from that row alone, by its key. Whether rows of the
    aggregated table join it does not matter: a group touched needlessly is recomputed to
    what it was. Joining them instead read the aggregated table once per changed row, as
    no index leads from a movie to its ratings (a full scan of the ratings each time).
    None: not such a case."""
    if aggregation.join_table != stream.name or aggregation.table == stream.name:
        return None
    if not aggregation.group_joined:
        return None
    matched = " AND ".join(
        f"j.{quoted(c)} = changed.{n}" for c, n in zip(columns, names, strict=True)
    )
    return _joined_groups(aggregation, schema, stream.name, matched)


def _joined_groups(aggregation: Declared, schema: str, joined: str, condition: str) -> str:
    """The groups held by the rows of the joined table (``j``) that ``condition`` picks."""
    source = f"j.{quoted(aggregation.group_source)}"
    rows = f"FROM {qualified(schema, joined)} j"
    if aggregation.exploded:
        rows += f" CROSS JOIN LATERAL (SELECT DISTINCT unnest({source})) AS x(g)"
        source = "x.g"
    return (
        f"LATERAL (SELECT {source} AS g {rows} WHERE {condition} AND {source} IS NOT NULL)"
        " AS grouped"
    )


def _groups_of_rows(
    aggregation: Declared,
    stream: Stream,
    schema: str,
    columns: tuple[str, ...],
    names: list[str],
) -> str:
    """The groups of the rows the sink holds now with the changed keys, found by index per
    key (OFFSET 0 keeps the planner from turning this into one join that scans the whole
    table)."""
    group = aggregation.group_expression
    matched = " OR ".join(
        "("
        + " AND ".join(
            f"{alias}.{quoted(c)} = changed.{n}" for c, n in zip(columns, names, strict=True)
        )
        + ")"
        for alias, table in (("t", aggregation.table), ("j", aggregation.join_table))
        if table == stream.name
    )
    return (
        f"LATERAL (SELECT {group} AS g {aggregation.from_clause(schema)} "
        f"WHERE {group} IS NOT NULL AND ({matched}) OFFSET 0) AS grouped"
    )


def invalidate_incremental(cursor: Any, schema: str, stream: Stream) -> None:
    """Record, inside the caller's PostgreSQL transaction, that ``stream``'s rows changed
    without their groups being recorded (a key-based batch, a full refresh, a repair): the
    next ``chariot aggregate`` recomputes every group of the aggregations that read it."""
    ensure_tracking_tables(cursor, schema)
    invalid = qualified(schema, INVALID)
    cursor.execute(
        f"INSERT INTO {invalid} (table_name) SELECT %s WHERE NOT EXISTS (SELECT 1 FROM "
        f"{invalid} WHERE table_name = %s AND xact = pg_current_xact_id())",
        (stream.name, stream.name),
    )


def ensure_tracking_tables(cursor: Any, schema: str) -> None:
    """Create the two tables unless they exist (inside the caller's transaction: a
    concurrent creator makes this one fail once, under a savepoint, and the retry finds
    the table)."""
    if not _missing_tables(cursor, schema, set(TRACKING_TABLES)):
        return
    import psycopg

    for attempt in range(2):
        cursor.execute("SAVEPOINT chariot_tracking")
        try:
            for ddl in _DDL:
                cursor.execute(ddl.format(s=quoted(schema)))
        except psycopg.errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT chariot_tracking")
            if attempt:
                raise
        else:
            cursor.execute("RELEASE SAVEPOINT chariot_tracking")
            return


def tracking_tables_exist(connection: Any, schema: str) -> bool:
    """Whether changes are tracked: the tables 0.1 created exist (the sets table is
    created beside them by the next write that records groups)."""
    row = connection.execute(
        "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
        (qualified(schema, TOUCHED), qualified(schema, INVALID)),
    ).fetchone()
    return bool(row and row[0])


def tracking_state(connection: Any, schema: str) -> list[int] | None:
    """What ``connection``'s snapshot holds of both tables, as numbers that change with
    every record (rows are only inserted, and deleted by promotions): None when changes are
    not tracked. Part of a run's input state."""
    if not tracking_tables_exist(connection, schema):
        return None
    tables = [TOUCHED, INVALID]
    if sets_table_exists(connection, schema):
        tables.append(TOUCHED_SETS)
    parts = [
        f"(SELECT count(*) FROM {qualified(schema, table)}),"
        f" (SELECT coalesce(max(seq), 0) FROM {qualified(schema, table)})"
        for table in tables
    ]
    row = connection.execute(f"SELECT {', '.join(parts)}").fetchone()
    return [int(value) for value in row]


def sets_table_exists(connection: Any, schema: str) -> bool:
    row = connection.execute(
        "SELECT to_regclass(%s) IS NOT NULL", (qualified(schema, TOUCHED_SETS),)
    ).fetchone()
    return bool(row and row[0])


def touched_records(connection: Any, schema: str) -> str:
    """A query of every recorded (aggregation, fingerprint, group key), one row each time
    a group was recorded: from the rows of 0.1 and from the sets."""
    query = f"SELECT aggregation, fingerprint, group_key FROM {qualified(schema, TOUCHED)}"
    if sets_table_exists(connection, schema):
        query += (
            " UNION ALL SELECT aggregation, fingerprint, unnest(group_keys) "
            f"FROM {qualified(schema, TOUCHED_SETS)}"
        )
    return query


def forget_seen(connection: Any, schema: str, snapshot: str, *, invalidations: bool) -> int:
    """Delete the records ``snapshot`` (a ``pg_current_snapshot()`` text) saw: a promotion
    covers them; those committed after it stay for the next run. Returns the touched
    records deleted (rows of either table)."""
    if not tracking_tables_exist(connection, schema):
        return 0
    deleted = 0
    tables = [TOUCHED, TOUCHED_SETS] if sets_table_exists(connection, schema) else [TOUCHED]
    for table in tables:
        deleted += connection.execute(
            f"DELETE FROM {qualified(schema, table)} "
            "WHERE pg_visible_in_snapshot(xact, %s::pg_snapshot)",
            (snapshot,),
        ).rowcount
    if invalidations:
        connection.execute(
            f"DELETE FROM {qualified(schema, INVALID)} "
            "WHERE pg_visible_in_snapshot(xact, %s::pg_snapshot)",
            (snapshot,),
        )
    return int(deleted)


def _missing_tables(cursor: Any, schema: str, tables: set[str]) -> set[str]:
    names = sorted(tables)
    row = cursor.execute(
        "SELECT array_agg(name) FROM unnest(%s::text[], %s::text[]) AS n(name, qualified) "
        "WHERE to_regclass(qualified) IS NULL",
        (names, [qualified(schema, name) for name in names]),
    ).fetchone()
    return set(row[0] or []) if row else set()


def _key_columns(stream: Stream, schema: str) -> tuple[tuple[str, ...], list[str]]:
    """The table's key columns (source key -> output names, as the sink stores them) and
    their PostgreSQL types."""
    from chariot.sinks.postgres_layout import layout_for

    layout = layout_for(stream, schema)
    types = {c.name: c.type.replace(' COLLATE "C"', "") for c in layout.columns}
    return layout.keys, [types[name] for name in layout.keys]


def _declared(stream: Stream) -> tuple[Declared, ...]:
    """The project's aggregations (compiled once per project object)."""
    project = stream.project
    if project is None or not project.aggregations:
        return ()
    cached = _declared_cache.get(id(project))
    if cached is not None and cached[0] is project:
        _declared_cache.move_to_end(id(project))
        return cached[1]
    try:
        declared = declared_aggregations(project)
    except ConfigError:  # `chariot aggregate` reports it; a sink write must not fail on it
        declared = ()
    _declared_cache[id(project)] = (project, declared)
    while len(_declared_cache) > _CACHE_SIZE:
        _declared_cache.popitem(last=False)
    return declared
