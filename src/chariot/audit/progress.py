"""Progress of one stream's audit: per sink, segments checksummed on both sides so far.

Checksums are most of an audit's time, and the source's and each sink's run concurrently
on different threads: a sink's segment counts once both it and its source side are done.
"""

from __future__ import annotations

import threading

from chariot.audit.canonical import Canonical
from chariot.progress import ProgressCallback, notify


class SegmentProgress:
    def __init__(
        self,
        progress: ProgressCallback | None,
        stream: str,
        canonicals: dict[str, Canonical],
        segments: int,
    ) -> None:
        self.progress, self.segments = progress, segments
        self.tasks = {sink: f"{stream} vs {sink}" for sink in canonicals}
        self.source_of = {sink: source_side(canonical) for sink, canonical in canonicals.items()}
        self.checksummed: dict[str, int] = {}
        self.lock = threading.Lock()
        for task in self.tasks.values():
            notify(progress, task, 0, segments, unit="segments")

    def checksummed_one(self, side: str) -> None:
        """``side``: a sink's name, or ``source_side(canonical)``; called from its thread."""
        if self.progress is None:
            return
        with self.lock:
            self.checksummed[side] = self.checksummed.get(side, 0) + 1
            done = self.checksummed
            for sink, task in self.tasks.items():
                both = min(done.get(sink, 0), done.get(self.source_of[sink], 0))
                notify(self.progress, task, both, self.segments, unit="segments")

    def compared(self, sink: str) -> None:
        total = self.segments
        notify(self.progress, self.tasks[sink], total, total, unit="segments", state="done")


def source_side(canonical: Canonical) -> str:
    """The source is checksummed once per canonical form, shared by the sinks that use it."""
    return f"source:{id(canonical)}"
