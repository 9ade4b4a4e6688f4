"""Synthetic MovieLens-shaped data into the MySQL source (or straight into PostgreSQL).

Each chunk of generated ratings is written to a temporary CSV file with numpy (fixed-width,
zero-padded numbers: no per-row Python) and bulk-loaded with LOAD DATA LOCAL INFILE, so
memory stays flat and the load runs at the server's speed.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from chariot.config import MySQLSettings, PostgresSettings
from chariot.connections import mysql_connect, postgres_connection
from chariot.errors import ConfigError, DataError, SinkWriteError
from chariot.progress import ProgressCallback, notify
from chariot.seed.loading import LoadMethod, load_csv
from chariot.seed.movielens import MOVIELENS_FILES
from chariot.seed.results import AppendResult, PostgresRatingsResult, SeedResult
from chariot.seed.staged import StagedLoad, mysql_errors, require_mysql
from chariot.seed.synthetic_data import (
    RatingsChunk,
    SyntheticSpec,
    TagsChunk,
    generate_movies,
    generate_ratings,
)

# Generated ratings never have empty fields: load the columns directly (faster).
GENERATED_RATINGS = replace(MOVIELENS_FILES["ratings"], direct=True)
RATINGS_TASK = "synthetic ratings"


def seed_synthetic(
    settings: MySQLSettings,
    ratings: int,
    *,
    users: int | None = None,
    movies: int | None = None,
    seed: int = 0,
    method: LoadMethod = LoadMethod.auto,
    progress: ProgressCallback | None = None,
) -> SeedResult:
    """Replace the source's four tables with generated data (atomically, like the MovieLens
    seed). Deterministic for the same (ratings, users, movies, seed)."""
    started = time.perf_counter()
    require_mysql(settings)
    spec = checked_spec(ratings, users, movies, seed)
    notify(progress, RATINGS_TASK, 0, spec.ratings)
    with tempfile.TemporaryDirectory(prefix="chariot-synthetic-") as scratch:
        files = ChunkFiles(Path(scratch))
        with StagedLoad(settings, method) as load:
            movie_frame, link_frame = generate_movies(spec.movies, spec.seed)
            for name, frame in (("movies", movie_frame), ("links", link_frame)):
                path = files.frame(frame, name)
                load.load_file(name, path, MOVIELENS_FILES[name], expected=len(frame))
            _load_ratings_and_tags(load, files, spec, movie_frame["movieId"].to_numpy(), progress)
            rows = load.swap_in()
    notify(progress, RATINGS_TASK, spec.ratings, spec.ratings, state="done")
    return SeedResult(
        dataset="synthetic",
        database=settings.display_url(),
        method=load.method_used.value,
        rows=rows,
        table_seconds=load.table_seconds,
        seconds=round(time.perf_counter() - started, 3),
        seed=seed,
    )


def _load_ratings_and_tags(
    load: StagedLoad,
    files: ChunkFiles,
    spec: SyntheticSpec,
    ids: np.ndarray,
    progress: ProgressCallback | None,
) -> None:
    done = 0
    # closing(): on an error, stop the generator thread before the temp files go away.
    with closing(prefetched(files.written(generate_ratings(spec, ids)))) as chunks:
        for chunk in chunks:
            ratings_rows, tags_rows = chunk.ratings_rows, chunk.tags_rows
            load.load_file("ratings", chunk.ratings, GENERATED_RATINGS, expected=ratings_rows)
            load.load_file("tags", chunk.tags, MOVIELENS_FILES["tags"], expected=tags_rows)
            done += ratings_rows
            notify(progress, RATINGS_TASK, done, spec.ratings)


def append_synthetic_ratings(
    settings: MySQLSettings,
    ratings: int,
    *,
    users: int | None = None,
    seed: int = 1,
    method: LoadMethod = LoadMethod.auto,
) -> AppendResult:
    """Add ``ratings`` generated ratings by NEW users (ids above the current maximum) for
    movies already in the source, in one transaction. For incremental-sync scenarios."""
    started = time.perf_counter()
    require_mysql(settings)
    connection = mysql_connect(settings)
    try:
        with mysql_errors(settings), connection.cursor() as cursor:
            first_user_id, ids = _append_point(cursor)
            spec = checked_spec(ratings, users, len(ids), seed)
            loaded = _append_chunks(cursor, spec, ids, first_user_id, method)
            connection.commit()
    finally:
        connection.close()
    return AppendResult(
        ratings=loaded,
        first_user_id=first_user_id,
        last_user_id=first_user_id + spec.users - 1,
        seconds=round(time.perf_counter() - started, 3),
    )


def _append_point(cursor: Any) -> tuple[int, np.ndarray]:
    cursor.execute("SELECT COALESCE(MAX(userId), 0) FROM ratings")
    first_user_id = int(cursor.fetchone()[0]) + 1
    cursor.execute("SELECT movieId FROM movies ORDER BY movieId")
    ids = np.fromiter((row[0] for row in cursor.fetchall()), dtype=np.int64)
    if len(ids) == 0:
        raise DataError("the source has no movies to rate; run `chariot seed` first")
    return first_user_id, ids


def _append_chunks(
    cursor: Any, spec: SyntheticSpec, ids: np.ndarray, first_user_id: int, method: LoadMethod
) -> int:
    loaded = 0
    with tempfile.TemporaryDirectory(prefix="chariot-append-") as scratch:
        files = ChunkFiles(Path(scratch))
        chunks = generate_ratings(spec, ids, first_user_id=first_user_id)
        for chunk in files.written(chunks, with_tags=False):
            rows, method = load_csv(cursor, "ratings", chunk.ratings, GENERATED_RATINGS, method)
            check_rows("ratings", rows, chunk.ratings_rows)
            loaded += rows
    return loaded


def check_rows(table: str, loaded: int, expected: int) -> None:
    # Belt and braces: a generated key is unique by construction, so a shortfall is a bug.
    if loaded != expected:
        raise DataError(f"{table}: loaded {loaded:,} generated rows, expected {expected:,}")


T = TypeVar("T")
_DONE: Any = object()


def prefetched(items: Iterator[T]) -> Generator[T, None, None]:
    """Yield from ``items`` while a worker thread already produces the next one, so numpy
    generation overlaps the server's load (the GIL is released in both)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chariot-generate") as pool:
        pending = pool.submit(next, items, _DONE)
        while (item := pending.result()) is not _DONE:
            pending = pool.submit(next, items, _DONE)
            yield item


def checked_spec(ratings: int, users: int | None, movies: int | None, seed: int) -> SyntheticSpec:
    spec = SyntheticSpec.build(ratings, users, movies, seed)
    if (problem := spec.problem()) is not None:
        raise ConfigError(problem)
    return spec


@dataclass(frozen=True)
class WrittenChunk:
    ratings: Path
    ratings_rows: int
    tags: Path
    tags_rows: int


class ChunkFiles:
    """Temporary CSV files in the MovieLens format."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def frame(self, frame: Any, name: str) -> Path:
        path = self.directory / f"{name}.csv"
        frame.to_csv(path, index=False, lineterminator="\n")  # minimal quoting, "" escapes
        return path

    def written(
        self, chunks: Iterator[tuple[RatingsChunk, TagsChunk]], *, with_tags: bool = True
    ) -> Iterator[WrittenChunk]:
        """Write each chunk to one of two alternating file sets: with one chunk prefetched,
        chunk i+2 is only written after chunk i has been loaded."""
        for number, (ratings, tags) in enumerate(chunks):
            slot = number % 2
            ratings_path = self.ratings(ratings, f"ratings-{slot}")
            tags_path = self.tags(tags, f"tags-{slot}") if with_tags else ratings_path
            yield WrittenChunk(ratings_path, len(ratings), tags_path, len(tags.user_id))

    def ratings(self, chunk: RatingsChunk, name: str = "ratings") -> Path:
        path = self.directory / f"{name}.csv"
        with open(path, "wb") as file:
            file.write(b"userId,movieId,rating,timestamp\n")
            ratings_text(chunk, separator=",").tofile(file)
        return path

    def tags(self, chunk: TagsChunk, name: str = "tags") -> Path:
        import pandas as pd

        columns = {
            "userId": chunk.user_id,
            "movieId": chunk.movie_id,
            "tag": chunk.tag,
            "timestamp": chunk.timestamp,
        }
        return self.frame(pd.DataFrame(columns), name)


def ratings_text(chunk: RatingsChunk, *, separator: str) -> np.ndarray:
    """The chunk as a (rows, 37) byte matrix: ``uuuuuuuuuu,mmmmmmmmmm,r.r,tttttttttt\\n``.

    Zero-padded fixed-width numbers let numpy write every row at once; MySQL and
    PostgreSQL both read ``0000000042`` as 42.
    """
    sep = ord(separator)
    out = np.empty((len(chunk), 37), dtype=np.uint8)
    out[:, 0:10] = _digits(chunk.user_id, 10)
    out[:, 10] = sep
    out[:, 11:21] = _digits(chunk.movie_id, 10)
    out[:, 21] = sep
    out[:, 22] = chunk.half_stars // 2 + ord("0")
    out[:, 23] = ord(".")
    out[:, 24] = np.where(chunk.half_stars % 2 == 1, ord("5"), ord("0"))
    out[:, 25] = sep
    out[:, 26:36] = _digits(chunk.timestamp, 10)
    out[:, 36] = ord("\n")
    return out


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values.astype(np.int64)[:, None] // powers) % 10 + ord("0")).astype(np.uint8)


# -- straight into PostgreSQL (for aggregation tests and benchmarks) --------------------

POSTGRES_TABLES_DDL = (
    """CREATE TABLE IF NOT EXISTS {schema}.movies (
        movie_id integer PRIMARY KEY, title text NOT NULL, genres text[] NOT NULL, year integer)""",
    """CREATE TABLE IF NOT EXISTS {schema}.ratings (
        user_id integer, movie_id integer, rating numeric(2,1) NOT NULL,
        "timestamp" bigint NOT NULL, PRIMARY KEY (user_id, movie_id))""",
)


def load_ratings_into_postgres(
    settings: PostgresSettings,
    n: int,
    seed: int = 0,
    *,
    users: int | None = None,
    movies: int | None = None,
) -> PostgresRatingsResult:
    """Create ``<schema>.movies`` and ``<schema>.ratings`` (the PostgreSQL sink's layouts) if
    missing, empty them, and COPY in the same synthetic data ``seed synthetic`` generates
    for (n, users, movies, seed), in one transaction."""
    started = time.perf_counter()
    spec = checked_spec(n, users, movies, seed)
    movie_frame, _links = generate_movies(spec.movies, spec.seed)
    import psycopg

    with postgres_connection(settings) as connection, _postgres_errors(settings, psycopg.Error):
        schema = _prepare_postgres(connection, settings.schema_name)
        _copy_movies(connection, schema, movie_frame)
        loaded = 0
        for ratings_chunk, _tags in generate_ratings(spec, movie_frame["movieId"].to_numpy()):
            with (
                connection.cursor() as cursor,
                cursor.copy(
                    f'COPY {schema}.ratings (user_id, movie_id, rating, "timestamp") FROM STDIN'
                ) as copy,
            ):
                copy.write(ratings_text(ratings_chunk, separator="\t").tobytes())
            loaded += len(ratings_chunk)
        connection.commit()
    return PostgresRatingsResult(
        schema_name=settings.schema_name,
        movies=len(movie_frame),
        ratings=loaded,
        seconds=round(time.perf_counter() - started, 3),
    )


@contextmanager
def _postgres_errors(settings: PostgresSettings, driver_error: type[Exception]) -> Iterator[None]:
    try:
        yield
    except driver_error as error:
        text = str(error).strip() or type(error).__name__
        where = f"PostgreSQL sink at {settings.display_url()}"
        message = f"{where}: loading synthetic ratings failed: {text.splitlines()[0]}"
        raise SinkWriteError(message) from error


def _prepare_postgres(connection: Any, schema_name: str) -> str:
    from psycopg import sql

    schema = sql.Identifier(schema_name).as_string(connection)
    connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for ddl in POSTGRES_TABLES_DDL:
        connection.execute(ddl.format(schema=schema))
    connection.execute(f"TRUNCATE {schema}.ratings, {schema}.movies")
    return schema


def _copy_movies(connection: Any, schema: str, frame: Any) -> None:
    split_genres, title_year = _movielens_transforms("genres", "year")

    # A few thousand movies: per-row Python is fine here, and it reuses the sink's rules.
    with (
        connection.cursor() as cursor,
        cursor.copy(f"COPY {schema}.movies (movie_id, title, genres, year) FROM STDIN") as copy,
    ):
        for movie_id, title, genres in frame.itertuples(index=False):
            copy.write_row((int(movie_id), title, split_genres(genres), title_year(title)))


def _movielens_transforms(*names: str) -> tuple[Callable[[Any], Any], ...]:
    """The MovieLens example project's transforms of ``movies``, by output column: the rules
    a sync of that project applies (the genres list, the year from the title)."""
    from chariot.project.expressions import python_function
    from chariot.project.init import example_text
    from chariot.project.loading import parse_project
    from chariot.project.outputs import table_outputs

    movies = parse_project(example_text("movielens")).tables["movies"]
    outputs = {output.name: output for output in table_outputs(movies)}
    return tuple(python_function(outputs[name]) for name in names)
