"""The CLI's start-up: the Neo4j driver without pandas, NumPy and pyarrow; no garbage
collection while the CLI imports.

The driver imports all three when they are installed, for DataFrame results and NumPy or
Arrow parameters. Chariot hands it plain Python values and never asks for a DataFrame, yet
pandas (a dependency of Chariot's own aggregation code) made up most of the driver's import
time: about 1 s of every command that talks to Neo4j, a no-change sync included (measured
with ``python -X importtime -c "import neo4j"``). Registering the driver's
optional-dependency module in advance, with none of them, skips those imports.

Only the CLI does this (``chariot.cli.app.main``): a program that imports Chariot as a
library keeps the driver as it is. Should a later driver read another name from that
module, the stub answers ``None`` (feature absent) instead of failing the import.

The garbage collector is paused only while ``chariot.cli.app`` imports its modules
(``start_up_collection_paused``), never while a command runs: a program that imports
Chariot's library, or a sync that copies millions of rows, collects as usual.
"""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

OPTIONAL_DEPENDENCIES = "neo4j._optional_deps"


@contextmanager
def start_up_collection_paused() -> Iterator[None]:
    """No garbage collection while the CLI's modules import; what they made is then frozen.

    Importing creates ~100,000 objects that live as long as the process (modules, classes,
    pydantic schemas) and almost no garbage, yet the collector ran ~300 times over them
    during a no-change sync's imports, the full collections walking all of them: ~15% of
    that command's CPU (measured with ``gc.callbacks``). Afterwards collection is as before,
    minus the frozen start-up objects, which it would only have walked again (the drivers a
    command loads later import faster for it too). The price: the little cyclic garbage made
    while importing (about a thousand objects) is frozen with them, never freed.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def skip_neo4j_dataframe_support() -> None:
    """Before the driver is first imported; a no-op once it is (or once done)."""
    if "neo4j" in sys.modules or OPTIONAL_DEPENDENCIES in sys.modules:
        return
    sys.modules[OPTIONAL_DEPENDENCIES] = _AbsentDependencies(OPTIONAL_DEPENDENCIES)


class _AbsentDependencies(types.ModuleType):
    """Every optional dependency the driver asks for is absent (``None``)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None
