"""What the source's foreign-key actions did, which the binary log does not say.

``ON DELETE CASCADE`` / ``SET NULL`` / ``SET DEFAULT`` and their ``ON UPDATE`` twins change
the referring rows inside the storage engine: MariaDB and MySQL log the parent's row event
only (checked: ``../shared/docs/cdc-notes.md``). Change capture applies them itself, from
each ``chariot.streams.Reference``'s ``on_delete`` / ``on_update`` (``chariot init`` reads
them from the source):

* a parent key deleted (and not moved), or deleted and inserted again in the batch
  (``TableChanges.replaced``: the fold keeps the row, the children felt the delete): the
  children whose reference equals it, for ``on_delete`` cascade, set null or set default;
* a parent key moved (``TableChanges.moved``, an update of the key): the children whose
  reference equals the old key, for ``on_update`` cascade, set null or set default; with
  cascade also the source's children whose reference now equals the new key (the same
  rows, under their new key when the reference is part of the child's key, as in Sakila's
  ``film_actor``).

The children are looked up in the sink (its rows before this batch), in the batch itself (a
child inserted earlier in the same batch), and, for the new keys of a cascade, in the
source. Each child key found is then *refreshed* from the source's current row, read and
validated exactly as the first copy reads it (``SqlSource.rows_with_keys``): present ->
upsert (or reject), absent -> delete. A refreshed child whose key moved or vanished is a
parent change in turn, so the rules are followed down to grandchildren (every key is
refreshed once, so a cycle of references ends).

Why reading the source's *current* row is correct, although the batch stands for an
earlier moment of the source: the sink ends up with, for each refreshed key, a state the
source had at or after the batch. Every later change of that row is a row event after the
batch's position (or another foreign-key action, found again the same way), so applying
the rest of the log upserts or deletes the same key again, ending on the source's final
row: upserts and deletes by key converge whatever the starting point. Between the two, a
reader of the sink may see a child a little ahead of its parent, never a change lost. The
caller merges the returned changes into the batch after the log's own, so for a key both
name, the newer (refreshed) state wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chariot.batch import Key, Reject
from chariot.cdc.changes import TableChanges
from chariot.sinks.base import ChangeSink
from chariot.streams import Reference, Stream

# Actions that change the referring rows (restrict and no action refuse instead).
ACTING = ("cascade", "set null", "set default")


class SourceLookup(Protocol):
    """Reading the source by key (``chariot.sources.sql.SqlSource`` implements it)."""

    def rows_with_keys(
        self, stream: Stream, keys: Sequence[Key]
    ) -> tuple[list[tuple[Any, ...]], list[Reject]]:
        """Current rows with these keys (value contract) and the rejects among them."""
        ...

    def keys_where(
        self, stream: Stream, columns: Sequence[str], values: Sequence[Key]
    ) -> list[Key]:
        """Keys of the rows whose ``columns`` equal one of ``values``."""
        ...


@dataclass(frozen=True)
class _Child:
    stream: Stream
    reference: Reference


@dataclass
class _Hits:
    """The child keys one round found, and the key moves a cascade made."""

    keys: dict[Key, None] = field(default_factory=dict)  # ordered set
    moves: dict[Key, Key] = field(default_factory=dict)  # old child key -> new child key

    def add(self, keys: Iterable[Key]) -> None:
        self.keys.update(dict.fromkeys(keys))


def foreign_key_changes(
    changes: list[TableChanges],
    streams: Sequence[Stream],
    sink: ChangeSink,
    source: SourceLookup,
) -> list[TableChanges]:
    """The child-table changes the source's foreign-key actions made when ``changes`` (the
    log's own, folded per table) happened; one ``TableChanges`` per child table hit, in
    ``streams`` order. See the module docstring."""
    children = _children(streams)
    refreshed: dict[str, set[Key]] = {}
    found: dict[str, TableChanges] = {}
    batch = {change.stream.name: change for change in changes}
    parents = [change for change in changes if change.deletes or change.moved or change.replaced]
    while parents:
        hits: dict[str, _Hits] = {}
        for parent in parents:
            for child in children.get(parent.stream.name, []):
                found_hits = hits.setdefault(child.stream.name, _Hits())
                _find(parent, child, sink, source, batch, found_hits)
        parents = []
        for hit in _streams_hit(streams, hits):
            done = refreshed.setdefault(hit.name, set())
            keys = [key for key in hits[hit.name].keys if key not in done]
            if not keys:
                continue
            fresh = _refresh(hit, keys, hits[hit.name].moves, source)
            done.update(keys, fresh.changed_keys)  # a row may come back under a new spelling
            _merge(found, fresh)
            parents.append(fresh)
    return [found[stream.name] for stream in streams if stream.name in found]


def _children(streams: Sequence[Stream]) -> dict[str, list[_Child]]:
    """Referenced stream name -> the streams referring to it with an acting rule."""
    children: dict[str, list[_Child]] = {}
    for stream in streams:
        for reference in stream.references:
            if reference.on_delete in ACTING or reference.on_update in ACTING:
                children.setdefault(reference.table, []).append(_Child(stream, reference))
    return children


def _find(
    parent: TableChanges,
    child: _Child,
    sink: ChangeSink,
    source: SourceLookup,
    batch: dict[str, TableChanges],
    hits: _Hits,
) -> None:
    """Add to ``hits`` the keys of ``child`` rows the parent's changes acted on."""
    reference = child.reference
    columns = reference.columns
    moved_from = {old for old, _ in parent.moved}
    deleted = [key for key in parent.deletes if key not in moved_from] + parent.replaced
    if reference.on_delete in ACTING and deleted:
        hits.add(sink.keys_referencing(child.stream, columns, deleted))
        hits.add(_in_batch(batch.get(child.stream.name), columns, deleted))
    if reference.on_update in ACTING and parent.moved:
        olds = [old for old, _ in parent.moved]
        before = sink.keys_referencing(child.stream, columns, olds)
        before += _in_batch(batch.get(child.stream.name), columns, olds)
        hits.add(before)
        if reference.on_update == "cascade":
            news = [new for _, new in parent.moved]
            hits.add(source.keys_where(child.stream, columns, news))
            hits.moves.update(_moved_child_keys(child, dict(parent.moved), before))


def _in_batch(
    changes: TableChanges | None, columns: tuple[str, ...], values: list[Key]
) -> list[Key]:
    """Keys of the batch's own upserts of the child whose reference is one of ``values``."""
    if changes is None or not changes.upserts:
        return []
    sources = changes.stream.source_columns
    at = [sources.index(name) for name in columns]
    wanted = set(values)
    keys = changes.stream.key_positions
    return [
        tuple(row[p] for p in keys)
        for row in changes.upserts
        if tuple(row[p] for p in at) in wanted
    ]


def _moved_child_keys(child: _Child, moved: dict[Key, Key], before: list[Key]) -> dict[Key, Key]:
    """When the reference is part of the child's key, a cascade moves the child's key:
    old child key -> the key it has now (the reference replaced by the parent's new key)."""
    key = child.stream.key
    if not set(child.reference.columns) <= set(key):
        return {}
    at = [key.index(name) for name in child.reference.columns]
    moves: dict[Key, Key] = {}
    for old in before:
        parent_key = tuple(old[p] for p in at)
        if parent_key not in moved:
            continue
        new = list(old)
        for position, value in zip(at, moved[parent_key], strict=True):
            new[position] = value
        moves[old] = tuple(new)
    return moves


def _refresh(
    stream: Stream, keys: list[Key], moves: dict[Key, Key], source: SourceLookup
) -> TableChanges:
    """The changes that make the sink's rows of ``keys`` the source's current ones."""
    rows, rejects = source.rows_with_keys(stream, keys)
    positions = stream.key_positions
    present = {tuple(row[p] for p in positions) for row in rows}
    present |= {reject.key for reject in rejects}
    deletes = [key for key in keys if key not in present]
    gone = set(deletes)
    moved = [(old, new) for old, new in moves.items() if old in gone and new in present]
    return TableChanges(stream, deletes=deletes, upserts=rows, rejects=rejects, moved=moved)


def _merge(found: dict[str, TableChanges], fresh: TableChanges) -> None:
    """Add one round's refresh of a table to what earlier rounds found (keys are disjoint:
    each key is refreshed once)."""
    known = found.get(fresh.stream.name)
    if known is None:
        found[fresh.stream.name] = TableChanges(
            fresh.stream,
            deletes=list(fresh.deletes),
            upserts=list(fresh.upserts),
            rejects=list(fresh.rejects),
            moved=list(fresh.moved),
        )
        return
    known.deletes.extend(fresh.deletes)
    known.upserts.extend(fresh.upserts)
    known.rejects.extend(fresh.rejects)
    known.moved.extend(fresh.moved)


def _streams_hit(streams: Sequence[Stream], hits: dict[str, _Hits]) -> list[Stream]:
    return [stream for stream in streams if hits.get(stream.name) and hits[stream.name].keys]
