"""Keep the Neo4j driver from importing pandas, NumPy and pyarrow in the CLI process.

The driver imports all three when they are installed, for DataFrame results and NumPy or
Arrow parameters. Chariot hands it plain Python values and never asks for a DataFrame, yet
pandas (a dependency of Chariot's own aggregation code) made up most of the driver's import
time: about 1 s of every command that talks to Neo4j, a no-change sync included (measured
with ``python -X importtime -c "import neo4j"``). Registering the driver's
optional-dependency module in advance, with none of them, skips those imports.

Only the CLI does this (``chariot.cli.app.main``): a program that imports Chariot as a
library keeps the driver as it is. Should a later driver read another name from that
module, the stub answers ``None`` (feature absent) instead of failing the import.
"""

from __future__ import annotations

import sys
import types
from typing import Any

OPTIONAL_DEPENDENCIES = "neo4j._optional_deps"


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
