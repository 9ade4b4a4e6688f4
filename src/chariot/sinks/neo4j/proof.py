"""The proof that lets the Neo4j sink CREATE a row's relationships instead of MERGEing them.

A table's checkpoint node carries it: ``newAbove`` says the graph holds no relationship the
table makes for a key above ``max(highWaterMark, logMark)`` (for any key when both are
absent). Keys are compared in Python, so only integer keys (where Python orders them as
the source does) are ever proven; composite keys compare as tuples, like the keyset
reader's ORDER BY.

Why it holds, writer by writer (each runs under the table's writer lease):

* ``prepare`` sets ``newAbove`` only when the table has no checkpoint yet and the graph
  holds none of its relationships (a first load, or right after a full refresh, which
  deletes the checkpoint node and with it both marks).
* ``write`` (the keyset pass) writes keys up to the ``highWaterMark`` it commits with them.
  A batch whose first key is not above the bound (a replay, a sink ahead of the read) is
  MERGEd and clears ``newAbove``: the mark it stores may move back.
* ``apply`` (change capture) reads the proof inside its own transaction, CREATEs the
  upserted rows whose key is above the bound, MERGEs the others, and raises ``logMark`` to
  the highest key it CREATEd, in that same transaction. A delete only removes what a row
  made, which keeps the proof true. A retried batch that did commit reads the raised mark
  and MERGEs.
* ``upsert_rows`` (``audit --repair``) may write any key: it clears ``newAbove`` in its
  transaction. ``delete_keys`` only removes.

Once cleared, the proof stays gone until a full refresh: every later write MERGEs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chariot.batch import Key
from chariot.keys import key_from_json


@dataclass(frozen=True)
class Proof:
    """``proven``: keys above ``bound`` are new (every key when ``bound`` is None)."""

    proven: bool
    bound: Key | None = None

    def is_new(self, key: Key) -> bool:
        if not self.proven or not integers(key):
            return False
        return self.bound is None or (len(key) == len(self.bound) and key > self.bound)


NOT_PROVEN = Proof(False)


def proof(new_above: bool, mark: str | None, log_mark: str | None) -> Proof:
    """The proof a checkpoint node's ``newAbove``, ``highWaterMark`` and ``logMark`` give."""
    if not new_above:
        return NOT_PROVEN
    marks = [key_from_json(text) for text in (mark, log_mark) if text is not None]
    if not all(integers(key) for key in marks):
        return NOT_PROVEN
    if len({len(key) for key in marks}) > 1:
        return NOT_PROVEN
    return Proof(True, max(marks) if marks else None)


def integers(key: Sequence[Any]) -> bool:
    return all(type(value) is int for value in key)
