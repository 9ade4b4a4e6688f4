"""The proof that lets the Neo4j sink CREATE rows (``chariot.sinks.neo4j.proof``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chariot.sinks.neo4j.proof import NOT_PROVEN, Proof, proof

keys = st.tuples(st.integers(-(2**40), 2**40), st.integers(0, 2**20))


def test_no_proof_without_new_above() -> None:
    assert proof(False, None, None) == NOT_PROVEN
    assert not proof(False, None, None).is_new((1, 2))


def test_without_marks_every_integer_key_is_new() -> None:
    assert proof(True, None, None) == Proof(True, None)
    assert proof(True, None, None).is_new((1, 2))
    assert not proof(True, None, None).is_new(("a", 2))


def test_keys_that_are_not_integers_are_never_proven() -> None:
    assert proof(True, '["a"]', None) == NOT_PROVEN
    assert not proof(True, "[1]", None).is_new(("b",))
    assert not proof(True, "[1]", None).is_new((True,))  # a bool is not an integer key
    assert proof(True, "[1]", "[1,2]") == NOT_PROVEN  # marks of different shapes


@given(keys, st.one_of(st.none(), keys), keys)
def test_a_key_is_new_only_above_both_marks(
    mark: tuple, log_mark: tuple | None, key: tuple
) -> None:
    found = proof(
        True,
        f"[{mark[0]},{mark[1]}]",
        None if log_mark is None else f"[{log_mark[0]},{log_mark[1]}]",
    )
    highest = max(mark, log_mark) if log_mark is not None else mark
    assert found.is_new(key) == (key > highest)
