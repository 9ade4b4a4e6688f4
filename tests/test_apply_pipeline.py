"""An applier prepares its next batch while the sink commits the one before: pure logic.

The sink here is a recorder, not a database (the sinks' own apply is tested against real
servers in ``test_cdc_*``): what is checked is the applier's order of calls, made
deterministic with events, never with sleeps.
"""

from __future__ import annotations

import threading

from chariot.cdc.changes import ChangeBatch
from chariot.cdc.fold import StreamIndex
from chariot.cdc.position import LogPosition
from chariot.cdc.reader import Change, SourceTransaction
from chariot.config import Settings
from chariot.streams import Column, Stream
from chariot.sync.capture import _END, LogPhase, _Applier

ITEMS = Stream(
    name="items",
    source_table="items",
    columns=(Column("id", "id", "int"), Column("label", "label", "text", nullable=True)),
    key=("id",),
)
WAIT = 10.0  # seconds; only a broken pipeline ever waits this long


class RecordingSink:
    """Records ``prepare_changes`` and ``apply`` calls by the batch's last key."""

    max_changes_per_transaction = None

    def __init__(self, *, fail_on: int | None = None) -> None:
        self.calls: list[str] = []
        self.applied: list[int] = []
        self.fail_on = fail_on
        self.second_prepared = threading.Event()
        self.first_waited: bool | None = None

    def prepare_changes(self, batch: ChangeBatch) -> None:
        key = _key(batch)
        self.calls.append(f"prepare {key}")
        batch.prepared = key
        if key == 2:
            self.second_prepared.set()

    def apply(self, batch: ChangeBatch) -> None:
        key = batch.prepared
        assert key == _key(batch), "apply runs on what prepare_changes made"
        if key == 1:
            # Held until the applier has prepared the next batch: without the pipeline
            # that never happens while this one is applying.
            self.first_waited = self.second_prepared.wait(WAIT)
        if key == self.fail_on:
            raise ValueError(f"batch {key} refused")
        self.calls.append(f"applied {key}")
        self.applied.append(key)

    def is_transient(self, error: BaseException) -> bool:
        return False


def _key(batch: ChangeBatch) -> int:
    (table,) = batch.tables
    return int(table.upserts[-1][0])


def _position(key: int) -> LogPosition:
    return LogPosition("log.000001", 100 * key)


def _run(sink: RecordingSink, count: int) -> _Applier:
    settings = Settings()
    settings = settings.model_copy(
        update={"run": settings.run.model_copy(update={"batch_size": 1})}
    )
    phase = LogPhase(
        settings=settings,
        streams=[ITEMS],
        sinks={"recorder": sink},  # type: ignore[dict-item]  # the calls an applier makes
        positions={"recorder": {"items": _position(0)}},
        validate=lambda stream, row: None,
    )
    applier = _Applier("recorder", sink, phase, StreamIndex([ITEMS]), {"items": _position(0)})  # type: ignore[arg-type]
    thread = threading.Thread(target=applier.run)
    thread.start()
    for key in range(1, count + 1):
        change = Change("items", "insert", None, {"id": key, "label": f"row {key}"})
        applier.offer(SourceTransaction([change], _position(key)))
    applier.offer(_END)
    thread.join(WAIT)
    assert not thread.is_alive()
    return applier


def test_the_next_batch_is_prepared_while_the_sink_commits_the_one_before() -> None:
    sink = RecordingSink()
    applier = _run(sink, 4)
    assert sink.first_waited is True
    assert sink.calls.index("prepare 2") < sink.calls.index("applied 1")
    assert sink.applied == [1, 2, 3, 4]  # in order, each once
    assert applier.result.status != "failed"
    assert applier.result.position_after == _position(4).render()
    assert applier.committed == 4


def test_after_a_failed_batch_nothing_later_is_applied_and_the_position_stays_before_it() -> None:
    sink = RecordingSink(fail_on=2)
    applier = _run(sink, 4)
    assert sink.applied == [1]
    assert applier.result.status == "failed"
    assert applier.result.error is not None and "batch 2 refused" in applier.result.error
    # What the sink committed, not what the applier had handed it.
    assert applier.result.position_after == _position(1).render()
    assert applier.committed == 1
