"""The stored text form of a row key reads back as the values the source compares."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from chariot.keys import JsonKey, json_ready, key_from_json, key_to_json

KEY_VALUES = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.text(),
    st.binary(max_size=32),
    st.none(),
)


@given(st.lists(KEY_VALUES, min_size=1, max_size=4))
def test_ints_text_and_bytes_read_back_as_they_were(key: list[Any]) -> None:
    for compact in (False, True):
        assert key_from_json(key_to_json(key, compact=compact)) == tuple(key)


def test_the_text_postgresql_and_neo4j_store() -> None:
    assert key_to_json((1, "a")) == '[1, "a"]'  # as jsonb renders it
    assert key_to_json((1, "a"), compact=True) == '[1,"a"]'
    assert key_to_json((b"\x00\xff",)) == '[{"hex": "00ff"}]'
    assert key_to_json((dt.datetime(2024, 5, 1, 10, 0, 0, 5), Decimal("1.50"))) == (
        '["2024-05-01 10:00:00.000005", "1.50"]'  # the source compares these as typed
    )


class _Difference(BaseModel):
    key: JsonKey
    row: dict[str, Any]


def test_json_output_survives_bytes_that_are_not_text() -> None:
    ready = json_ready(_Difference(key=[b"\xfe"], row={"blob": b"\xff\x00", "n": 1}))
    assert json.loads(json.dumps(ready)) == {
        "key": [{"hex": "fe"}],
        "row": {"blob": "ff00", "n": 1},
    }
