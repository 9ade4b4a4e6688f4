"""How far a sink is behind the source's binary log: transactions, row changes, seconds.

Measured by reading the log from the sink's position to its end now (no waiting): the
transactions there that change a project table are what the sink has still to apply; the
oldest one's commit time gives the lag in seconds. The read is bounded (a sink far behind
reports "at least" the counted amount) so that ``chariot status`` stays quick.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass

from chariot.cdc.fold import StreamIndex, pending_changes
from chariot.cdc.position import LogPosition, current_position
from chariot.cdc.reader import read_transactions
from chariot.config import Settings
from chariot.streams import Stream


@dataclass(frozen=True)
class Lag:
    transactions: int  # source transactions (changing project tables) not yet applied
    changes: int  # their row changes
    seconds: float  # now minus the commit time of the oldest one; 0 when caught up
    complete: bool  # False: the count stopped at its bound (the sink is at least this far)
    source_position: str  # the end of the source's log when measured


def measure_lag(
    settings: Settings,
    streams: Sequence[Stream],
    position: LogPosition,
    *,
    max_transactions: int = 100_000,
    max_seconds: float = 5.0,
) -> Lag:
    from chariot.connections import mysql_connect

    connection = mysql_connect(settings.mysql)
    try:
        end = current_position(connection)
    finally:
        connection.close()
    started = time.monotonic()
    counted = changes = 0
    oldest: dt.datetime | None = None
    complete = True
    start = LogPosition(position.file, position.offset, position.gtid)
    index = StreamIndex(streams)
    held = {stream.name: position for stream in streams}
    for transaction in read_transactions(settings.mysql, streams, start, stop_at=end):
        # What a sink at ``position`` still has to apply (a chunked one skips its start).
        pending = pending_changes(transaction, held, index)
        if not pending:
            continue
        counted += 1
        changes += len(pending)
        if oldest is None:
            oldest = transaction.committed_at
        if counted >= max_transactions or time.monotonic() - started > max_seconds:
            complete = False
            break
    seconds = 0.0
    if oldest is not None:
        seconds = max(0.0, (dt.datetime.now(dt.UTC) - oldest).total_seconds())
    return Lag(counted, changes, round(seconds, 1), complete, end.render())
