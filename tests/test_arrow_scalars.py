"""The Arrow reject screens' scalars, built from bytes, equal pyarrow's own (pure logic)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from chariot.sources.arrow_rules import _scalar


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.integers(-(2**63), 2**63 - 1),
        st.integers(0, 12).flatmap(
            lambda places: st.decimals(allow_nan=False, allow_infinity=False, places=places)
        ),
        st.decimals(allow_nan=False, allow_infinity=False),
    )
)
def test_a_scalar_from_bytes_equals_pyarrows(value: int | Decimal) -> None:
    try:
        expected = pa.scalar(value)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError):
        return  # nothing to match: pyarrow cannot hold it either
    built = _scalar(value)
    assert built.type == expected.type
    assert built.as_py() == expected.as_py()


def test_edges() -> None:
    for value in (0, -1, 2**63 - 1, -(2**63), Decimal("0.5"), Decimal("-0.001"), Decimal("1E+3")):
        assert _scalar(value).type == pa.scalar(value).type
        assert _scalar(value).as_py() == pa.scalar(value).as_py()
