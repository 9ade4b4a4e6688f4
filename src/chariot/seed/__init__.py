"""Seeding the MySQL source: the real MovieLens CSVs, or MovieLens-shaped synthetic data.

The synthetic generator needs numpy and pandas; it is imported on first use so that
``chariot --help`` and the MovieLens seed stay light.
"""

from __future__ import annotations

from typing import Any

from chariot.seed.loading import LoadMethod
from chariot.seed.movielens import seed_movielens
from chariot.seed.results import AppendResult, PostgresRatingsResult, SeedResult
from chariot.seed.source_schema import SOURCE_TABLES, create_source_tables

_SYNTHETIC = {"seed_synthetic", "append_synthetic_ratings", "load_ratings_into_postgres"}

__all__ = [
    "SOURCE_TABLES",
    "AppendResult",
    "LoadMethod",
    "PostgresRatingsResult",
    "SeedResult",
    "append_synthetic_ratings",
    "create_source_tables",
    "load_ratings_into_postgres",
    "seed_movielens",
    "seed_synthetic",
]


def __getattr__(name: str) -> Any:
    if name in _SYNTHETIC:
        from chariot.seed import synthetic

        return getattr(synthetic, name)
    raise AttributeError(f"module 'chariot.seed' has no attribute {name!r}")
