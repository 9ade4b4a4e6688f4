"""Seeding the MySQL source: the real MovieLens CSVs, or MovieLens-shaped synthetic data.

Every name below loads its module on first use: the CLI imports ``chariot.seed.loading``
(for ``--method``) when it starts, and that must not bring in the MovieLens loader, the
source schema or the synthetic generator (numpy and pandas) on every command's start-up.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chariot.seed.loading import LoadMethod
    from chariot.seed.movielens import seed_movielens
    from chariot.seed.results import AppendResult, PostgresRatingsResult, SeedResult
    from chariot.seed.source_schema import SOURCE_TABLES, create_source_tables
    from chariot.seed.synthetic import (
        append_synthetic_ratings,
        load_ratings_into_postgres,
        seed_synthetic,
    )

_HOMES = {
    "LoadMethod": "loading",
    "seed_movielens": "movielens",
    "AppendResult": "results",
    "PostgresRatingsResult": "results",
    "SeedResult": "results",
    "SOURCE_TABLES": "source_schema",
    "create_source_tables": "source_schema",
    "seed_synthetic": "synthetic",
    "append_synthetic_ratings": "synthetic",
    "load_ratings_into_postgres": "synthetic",
}

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
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'chariot.seed' has no attribute {name!r}")
    return getattr(import_module(f"chariot.seed.{home}"), name)
