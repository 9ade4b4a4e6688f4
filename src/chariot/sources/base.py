"""The contract every source implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

from chariot.batch import Batch, Key
from chariot.config import Settings
from chariot.streams import Stream


class Source(ABC):
    """Reads a stream in key order, strictly after a high-water mark, in batches.

    Ordering and key comparison happen in the source database (its collation), never in
    Python. A read error raises ``SourceReadError``; it is never "end of data".
    """

    name: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @abstractmethod
    def read(self, stream: Stream, *, after: Key | None, batch_size: int) -> Iterator[Batch]:
        """Yield batches of rows with key > ``after`` (all rows when None), in key order."""

    @abstractmethod
    def count(self, stream: Stream, *, after: Key | None = None) -> int:
        """How many rows ``read`` would yield (for progress and --dry-run)."""

    def estimate(self, stream: Stream) -> int | None:
        """Roughly how many rows the whole stream has, from statistics (cheap: no scan), or
        None when the source keeps none. A first load shows it as its progress total
        instead of counting every row before reading them all anyway."""
        return None

    def has_rows_from(self, stream: Stream, key: Key) -> bool:
        """Whether a row with key >= ``key`` exists (cheap: an index lookup). The default
        says yes, which only disables the replaced-source check for that source."""
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
