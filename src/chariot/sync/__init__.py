"""``chariot sync``: read each table from the source once, write it to every sink."""

from chariot.progress import Progress, ProgressCallback
from chariot.sync.conductor import select_streams, sync
from chariot.sync.results import SinkFailure, SinkTableResult, SyncResult, TableResult

__all__ = [
    "Progress",
    "ProgressCallback",
    "SinkFailure",
    "SinkTableResult",
    "SyncResult",
    "TableResult",
    "select_streams",
    "sync",
]
