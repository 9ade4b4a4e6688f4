"""Loading the MovieLens CSVs (ml-latest-small, or any release in the same format) into
the MySQL source, replacing its four tables atomically."""

from __future__ import annotations

import time
from pathlib import Path

from chariot.config import MySQLSettings
from chariot.errors import DataError
from chariot.progress import ProgressCallback, notify
from chariot.seed.download import cached_movielens_small
from chariot.seed.loading import CsvLayout, LoadMethod
from chariot.seed.results import SeedResult
from chariot.seed.staged import StagedLoad, require_mysql

# File name -> layout (header = column names of the source table, in file order).
MOVIELENS_FILES: dict[str, CsvLayout] = {
    "movies": CsvLayout(("movieId", "title", "genres"), frozenset({"movieId"})),
    "links": CsvLayout(("movieId", "imdbId", "tmdbId"), frozenset({"movieId", "tmdbId"})),
    "ratings": CsvLayout(
        ("userId", "movieId", "rating", "timestamp"),
        frozenset({"userId", "movieId", "rating", "timestamp"}),
    ),
    "tags": CsvLayout(
        ("userId", "movieId", "tag", "timestamp"), frozenset({"userId", "movieId", "timestamp"})
    ),
}


def seed_movielens(
    settings: MySQLSettings,
    directory: Path | None = None,
    *,
    method: LoadMethod = LoadMethod.auto,
    progress: ProgressCallback | None = None,
    download_timeout: float = 30.0,
) -> SeedResult:
    """Replace the source's movies, links, ratings and tags with the CSVs in ``directory``
    (downloaded and cached when None). Readers see the old tables until one atomic swap."""
    started = time.perf_counter()
    require_mysql(settings)
    downloaded = False
    if directory is None:
        directory, downloaded = cached_movielens_small(timeout=download_timeout)
    paths = validate_movielens_dir(directory)
    total_bytes = sum(path.stat().st_size for path in paths.values())
    done_bytes, task = 0, "movielens CSV files"
    with StagedLoad(settings, method) as load:
        for table, path in paths.items():
            notify(progress, task, done_bytes, total_bytes, unit="bytes")
            load.load_file(table, path, MOVIELENS_FILES[table])
            done_bytes += path.stat().st_size
        notify(progress, task, done_bytes, total_bytes, unit="bytes")
        rows = load.swap_in()
    notify(progress, task, done_bytes, total_bytes, unit="bytes", state="done")
    return SeedResult(
        dataset="movielens",
        database=settings.display_url(),
        method=load.method_used.value,
        rows=rows,
        table_seconds=load.table_seconds,
        seconds=round(time.perf_counter() - started, 3),
        source_dir=str(directory),
        downloaded=downloaded,
    )


def validate_movielens_dir(directory: Path) -> dict[str, Path]:
    """The four CSV paths, after checking each exists and starts with its expected header."""
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory (expected the extracted ml-latest-small)")
    paths = {}
    for table, layout in MOVIELENS_FILES.items():
        path = directory / f"{table}.csv"
        if not path.is_file():
            raise DataError(
                f"{path}: missing (a MovieLens directory has movies, links, ratings and tags .csv)"
            )
        check_header(path, layout.header)
        paths[table] = path
    return paths


def check_header(path: Path, expected: str) -> None:
    with open(path, "rb") as file:
        first = file.readline(4096)
    found = first.decode("utf-8", errors="replace").removeprefix("\ufeff").rstrip("\r\n")
    if found != expected:
        shown = found if len(found) <= 60 else found[:57] + "..."
        raise DataError(f"{path}: expected the header {expected!r}, found {shown!r}")
