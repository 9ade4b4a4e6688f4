"""The Neo4j sink as a comparison side.

Cypher has no hash function. The graph's ratings are numbers only, so Neo4j hashes them
itself with integer arithmetic (``canonical.arith_parts``): a segment costs one aggregate
query and ships nothing, and differing segments are bisected like in SQL. Streams with
text (movies, links, tags) ship each segment's values as one list and are hashed here with
the same canonical text the source builds in SQL.

Segments are selected through the node-key index (``u.userId >= lo AND u.userId <= hi`` is
an index range seek) plus the full key-tuple bounds; each read is one short read
transaction. Checkpoint and reject nodes carry other labels and are never matched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from chariot.audit.canonical import (
    ARITH_HALF,
    CYPHER,
    Canonical,
    arith_fold,
    arith_product,
    arith_total,
    cypher_checked,
)
from chariot.audit.segments import Segment, named, range_condition
from chariot.audit.sides import Checksum, Digests, HashingSide
from chariot.batch import Key
from chariot.config import Settings
from chariot.connections import neo4j_driver
from chariot.errors import AuditError

if TYPE_CHECKING:
    from neo4j import Driver


class GraphSide(HashingSide):
    label = "neo4j"

    def __init__(
        self, settings: Settings, canonical: Canonical, driver: Driver | None = None
    ) -> None:
        super().__init__(canonical)
        self.settings = settings
        self.key_columns = [f.cypher for f in canonical.key_fields]
        self.arith = canonical.flavor == "arith"
        self.bisectable = self.arith
        self._driver = driver
        self._owns_driver = driver is None

    @property
    def driver(self) -> Driver:
        if self._driver is None:
            self._driver = neo4j_driver(self.settings.neo4j)
        return self._driver

    def close(self) -> None:
        if self._driver is not None and self._owns_driver:
            self._driver.close()
        self._driver = None

    def query(self, cypher: str, params: dict[str, Any]) -> list[list[Any]]:
        from neo4j.exceptions import DriverError, Neo4jError

        def read(tx: Any) -> list[list[Any]]:
            return [list(values) for values in tx.run(cypher, params).values()]

        try:
            with self.driver.session(database=self.settings.neo4j.database) as session:
                return session.execute_read(read)
        except (Neo4jError, DriverError, OSError) as error:
            message = getattr(error, "message", None) or str(error) or type(error).__name__
            raise AuditError(f"neo4j, table {self.canonical.stream.name}: {message}") from error

    def _statement(self, condition: str, returned: str, tail: str = "") -> str:
        """MATCH ... WHERE ... then ``returned``: a RETURN list, or WITH stages and a RETURN."""
        filters = [c for c in (self.canonical.cypher_filter, condition) if c]
        if not returned.startswith("WITH "):
            returned = f"RETURN {returned}"
        return f"{self.canonical.cypher_match} WHERE {' AND '.join(filters)} {returned}{tail}"

    def _in(self, segment: Segment, returned: str, tail: str = "") -> list[list[Any]]:
        params, param = named()
        condition = range_condition(self.key_columns, segment, param)
        return self.query(self._statement(condition, returned, tail), params)

    def _fields(self) -> str:
        return ", ".join(f.cypher for f in self.canonical.fields)

    # -- checksums ---------------------------------------------------------------------------

    def checksum(self, segment: Segment) -> Checksum:
        if not self.arith:
            return super().checksum(segment)
        count, high, low, bad = self._in(
            segment,
            self._hashed(),
            f"RETURN count(*), sum(h / {ARITH_HALF}), sum(h % {ARITH_HALF}), sum(bad)",
        )[0]
        return Checksum(int(count), arith_total(int(high) * ARITH_HALF + int(low), bad))

    def digests(self, segment: Segment) -> Digests:
        if not self.arith:
            return super().digests(segment)
        width = len(self.key_columns)
        keys = ", ".join(f"k{i}" for i in range(width))
        rows = self._in(segment, self._hashed(), f"RETURN {keys}, h, bad")
        return [(tuple(row[:width]), arith_total(row[width], row[width + 1])) for row in rows]

    def _hashed(self) -> str:
        """WITH stages computing each row's hash once: every property is read once, every
        value checked and every fold computed once (Cypher re-evaluates a repeated
        sub-expression; variables keep the per-row work linear)."""
        fields = self.canonical.fields
        position = {f.cypher: i for i, f in enumerate(fields)}
        keys = [f"k{i}" for i in range(len(self.key_columns))]
        carried = ", ".join(keys)
        read = ", ".join(f"{f.cypher} AS a{i}" for i, f in enumerate(fields))
        key_of = ", ".join(
            f"a{position[c]} AS {k}" if c in position else f"{c} AS {k}"
            for c, k in zip(self.key_columns, keys, strict=True)
        )
        checked = ", ".join(f"{cypher_checked(f, f'a{i}')} AS v{i}" for i, f in enumerate(fields))
        bad = " + ".join(f"(CASE WHEN v{i} IS NULL THEN 1 ELSE 0 END)" for i in range(len(fields)))
        values = ", ".join(f"coalesce(v{i}, 0) AS w{i}" for i in range(len(fields)))
        wide = [f.wide for f in fields]
        folds = [arith_fold([f"w{i}" for i in range(len(fields))], wide, w, CYPHER) for w in (0, 1)]
        return (
            f"WITH {read} WITH {key_of}, {checked}"
            f" WITH {carried}, {bad} AS bad, {values}"
            f" WITH {carried}, bad, {folds[0]} AS x1, {folds[1]} AS x2"
            f" WITH {carried}, bad, {arith_product('x1', 'x2')} AS h "
        )

    def segment_values(self, segment: Segment) -> Iterable[Sequence[Any]]:
        # One list per segment: the driver decodes a list of lists several times faster
        # than the same rows as records.
        rows = self._in(segment, f"collect([{self._fields()}])")
        return rows[0][0] if rows else []

    # -- keys and rows -----------------------------------------------------------------------

    def keys_in(self, segment: Segment, limit: int | None = None, offset: int = 0) -> list[Key]:
        keys = ", ".join(self.key_columns)
        tail = f" ORDER BY {keys}" + (
            f" SKIP {int(offset)} LIMIT {int(limit)}" if limit is not None else ""
        )
        return [tuple(row) for row in self._in(segment, keys, tail)]

    def split_key(self, segment: Segment, offset: int) -> Key | None:
        keys = self.keys_in(segment, limit=1, offset=offset)
        return keys[0] if keys else None

    def fetch_values(self, keys: Sequence[Key]) -> list[tuple[Any, ...]]:
        # One UNWIND per chunk: each key is an index seek on the node key.
        condition = " AND ".join(
            f"{column} = key[{i}]" for i, column in enumerate(self.key_columns)
        )
        statement = "UNWIND $keys AS key " + self._statement(condition, self._fields())
        return [tuple(row) for row in self.query(statement, {"keys": [list(k) for k in keys]})]
