"""Where the tests' MovieLens ml-latest-small comes from, without any folder outside the clone.

1. ``CHARIOT_MOVIELENS_DIR`` when set (``make test`` and CI set it when ``../shared`` has it);
2. else ``chariot seed movielens``'s own verified cache, downloading into it when online.

When neither works, a test that needs the data fails under ``CHARIOT_REQUIRE_SERVICES=1``
and skips otherwise; ``make test`` stops before running any test (see ``conftest.py``).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

ENV_VARIABLE = "CHARIOT_MOVIELENS_DIR"
FIXTURE = "movielens_dir"
# Short: an offline machine fails at once (no DNS), a firewalled one must not stall the run.
DOWNLOAD_TIMEOUT = 15.0
HOW_TO_PROVIDE = (
    f"set {ENV_VARIABLE} to an extracted ml-latest-small, "
    "or run `make movielens` once where files.grouplens.org is reachable"
)


@dataclass(frozen=True)
class MovieLensData:
    directory: Path | None
    problem: str = ""

    @property
    def message(self) -> str:
        """One line: what is missing and how to provide it."""
        return f"MovieLens ml-latest-small is missing: {self.problem}; {HOW_TO_PROVIDE}"


@functools.cache
def find_movielens() -> MovieLensData:
    """Resolved once per test session: the download is tried at most once."""
    return resolve_movielens(os.environ.get(ENV_VARIABLE, ""))


def resolve_movielens(configured: str) -> MovieLensData:
    """``configured`` is the value of CHARIOT_MOVIELENS_DIR ("" when unset)."""
    if configured:
        directory = Path(configured).expanduser().resolve()
        missing = [
            name
            for name in ("movies.csv", "links.csv", "ratings.csv", "tags.csv")
            if not (directory / name).is_file()
        ]
        if missing:
            return MovieLensData(None, f"{ENV_VARIABLE}={configured} has no {', '.join(missing)}")
        return MovieLensData(directory)
    return _from_download_cache()


def _from_download_cache() -> MovieLensData:
    from chariot.errors import DataError
    from chariot.seed.download import DATASET_DIR_NAME, cache_dir, cached_movielens_small

    try:
        directory, _ = cached_movielens_small(timeout=DOWNLOAD_TIMEOUT)
    except DataError as error:
        reason = str(error).split("; pass --dir", 1)[0]
        cached = cache_dir() / DATASET_DIR_NAME
        return MovieLensData(
            None, f"{ENV_VARIABLE} is not set, no verified copy in {cached}, {reason}"
        )
    return MovieLensData(directory)
