"""The CLI keeps the Neo4j driver from importing pandas/NumPy/pyarrow (start-up time)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from chariot.cli.lean_imports import skip_neo4j_dataframe_support
skip_neo4j_dataframe_support()
import neo4j, neo4j.exceptions, neo4j.time
from neo4j._codec.packstream.v1 import Packer  # the driver's value encoder loads
loaded = sorted(name for name in ("numpy", "pandas", "pyarrow") if name in sys.modules)
import pandas  # still importable by Chariot's own code afterwards
print(",".join(loaded) or "none", hasattr(neo4j, "GraphDatabase"), pandas.__name__)
"""


def test_the_driver_loads_without_pandas_numpy_or_pyarrow() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == ["none", "True", "pandas"]


def test_without_the_stub_the_driver_imports_them() -> None:
    """The probe can fail: the plain driver does load pandas when it is installed."""
    plain = PROBE.replace("skip_neo4j_dataframe_support()\n", "")
    done = subprocess.run(
        [sys.executable, "-c", plain], capture_output=True, text=True, check=True, timeout=120
    )
    assert "pandas" in done.stdout.split()[0]


def test_a_no_op_once_the_driver_is_loaded() -> None:
    probe = (
        "import sys, neo4j\n"
        "from chariot.cli.lean_imports import skip_neo4j_dataframe_support as skip\n"
        "skip(); print(type(sys.modules['neo4j._optional_deps']).__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "module"


# What `chariot sync` imports before it knows whether there is anything to do: the CLI, the
# sync library, the built-in source and sinks with their drivers, and the change-capture
# modules (the binary log itself is opened only when a sink is behind the log's end).
SYNC_PATH = (
    "chariot.cli.app",
    "chariot.sync",
    "chariot.sync.capture",
    "chariot.cdc.reader",
    "chariot.sources.sql",
    "chariot.sinks.postgres",
    "chariot.sinks.neo4j",
    "chariot.project.streams",
    "chariot.project.source_catalog",
)
# None of these is needed by a sync with nothing to copy; each costs 0.1-1 s to import.
HEAVY = (
    "pandas",
    "numpy",
    "pyarrow",
    "connectorx",
    "sqlalchemy",
    "dask",
    "distributed",
    "pymysqlreplication",
    "chariot.seed.movielens",
    "chariot.seed.synthetic",
    "chariot.aggregate",
    "chariot.audit",
)


def test_the_sync_path_imports_nothing_heavy() -> None:
    probe = (
        "import importlib, sys\n"
        "from chariot.cli.lean_imports import skip_neo4j_dataframe_support\n"
        "skip_neo4j_dataframe_support()\n"
        f"for name in {SYNC_PATH!r}: importlib.import_module(name)\n"
        f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == ""


def test_the_heavy_list_can_be_seen() -> None:
    """The probe above can fail: importing the seed package's loader by name loads it."""
    probe = (
        "import sys\n"
        "from chariot.seed import seed_movielens\n"
        "print('chariot.seed.movielens' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "True"


def _probe(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip()


def test_the_cli_collects_garbage_again_once_imported() -> None:
    """The collector pauses while the CLI imports; afterwards it runs, the start-up's
    objects frozen out of its way."""
    probe = (
        "import gc\nimport chariot.cli.app\nprint(gc.isenabled(), gc.get_freeze_count() > 10_000)"
    )
    assert _probe(probe) == "True True"


def test_collection_resumes_after_a_failed_import_and_stays_off_if_it_was() -> None:
    probe = (
        "import gc\n"
        "from chariot.cli.lean_imports import start_up_collection_paused as paused\n"
        "try:\n"
        "    with paused():\n"
        "        assert not gc.isenabled()\n"
        "        import chariot_no_such_module\n"
        "except ImportError:\n"
        "    pass\n"
        "after_failure = gc.isenabled()\n"
        "gc.disable()\n"
        "with paused():\n"
        "    pass\n"
        "print(after_failure, gc.isenabled())"
    )
    assert _probe(probe) == "True False"
