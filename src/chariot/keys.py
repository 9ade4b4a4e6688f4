"""One text form for a row key, wherever a key is stored or shown.

A key is stored as a JSON list (checkpoints, rejects, log keys) and read back as the values
the source compares against, so the next keyset page starts right after it. JSON has no
bytes: a binary key value is written as ``{"hex": "00ab"}`` and read back as bytes (the
next page would otherwise compare a VARBINARY key with the text ``"b'\\x00ab'"``, and skip
or refuse rows). Every other value that is not JSON (datetime, date, time, Decimal) is
written as its ``str()``, which the source compares as the typed value.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Hashable, Sequence
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, PlainSerializer
from pydantic_core import to_jsonable_python

Key = tuple[Any, ...]

_HEX = "hex"


@lru_cache(maxsize=256)
def key_getter(positions: tuple[Hashable, ...]) -> Callable[[Any], Key]:
    """A function from a row (a tuple by positions, a dict by names) to its key tuple: in
    C for compound keys (the change path takes millions of keys this way)."""
    if len(positions) == 1:
        only = positions[0]
        return lambda row: (row[only],)
    return operator.itemgetter(*positions)


def jsonable_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {_HEX: bytes(value).hex()}
    return str(value)


def key_to_json(key: Sequence[Any], *, compact: bool = False) -> str:
    """``[1, "a"]`` (PostgreSQL's control tables) or ``[1,"a"]`` (``compact``: Neo4j's)."""
    separators = (",", ":") if compact else (", ", ": ")
    return json.dumps(list(key), default=jsonable_value, ensure_ascii=False, separators=separators)


def key_from_json(text: str | Sequence[Any]) -> Key:
    values = json.loads(text) if isinstance(text, str) else text
    return tuple(_decoded(value) for value in values)


def _decoded(value: Any) -> Any:
    if isinstance(value, dict) and value.keys() == {_HEX}:
        return bytes.fromhex(value[_HEX])
    return value


def jsonable_key(key: Sequence[Any] | None) -> list[Any] | None:
    """A key as JSON-ready values (for ``--json`` output and tables on screen)."""
    return None if key is None else json.loads(key_to_json(key))


# A result field holding a key: real values in the library, the stored JSON form once dumped.
JsonKey = Annotated[list[Any], PlainSerializer(jsonable_key)]


def json_ready(model: BaseModel) -> dict[str, Any]:
    """A result as JSON values, like pydantic's JSON mode, except binary values: hex text
    where pydantic's JSON mode fails on bytes that are not UTF-8 (a VARBINARY key or
    value in an audit's differences)."""
    return to_jsonable_python(model.model_dump(mode="python"), bytes_mode="hex")  # type: ignore[no-any-return]
