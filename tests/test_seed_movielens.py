"""`chariot seed movielens`: every row and column of ml-latest-small, its quirks, idempotence,
the INSERT fallback, bad input and the (offline) download."""

from __future__ import annotations

import csv
import re
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chariot.config import MySQLSettings
from chariot.connections import mysql_connect
from chariot.errors import ConfigError, DataError
from chariot.seed import LoadMethod, create_source_tables, seed_movielens
from chariot.seed.download import EXPECTED_FILES, cached_movielens_small
from chariot.seed.source_schema import SOURCE_TABLES
from tests.servers import Servers

pytestmark = pytest.mark.integration

# Source table -> (ORDER BY, converters from the CSV text to what the driver returns).
CSV_TYPES: dict[str, tuple[str, tuple[Callable[[str], Any], ...]]] = {
    "movies": ("movieId", (int, str, str)),
    "links": ("movieId", (int, str, lambda v: None if v == "" else int(v))),
    "ratings": ("userId, movieId", (int, int, Decimal, int)),
    "tags": ("userId, movieId, tag", (int, int, str, int)),
}


def csv_rows(directory: Path, table: str) -> list[tuple[Any, ...]]:
    """The file as Python's csv module reads it, typed, sorted by key."""
    converters = CSV_TYPES[table][1]
    with open(directory / f"{table}.csv", encoding="utf-8", newline="") as file:
        reader = csv.reader(file)
        next(reader)
        rows = [
            tuple(convert(value) for convert, value in zip(converters, row, strict=True))
            for row in reader
        ]
    key_width = len(CSV_TYPES[table][0].split(","))
    return sorted(rows, key=lambda row: row[:key_width])


def table_rows(settings: MySQLSettings, table: str) -> list[tuple[Any, ...]]:
    connection = mysql_connect(settings)
    try:
        with connection.cursor() as cursor:
            # BINARY: sort tags by code point like Python does (the column is utf8mb4_bin anyway).
            order = CSV_TYPES[table][0].replace("tag", "BINARY tag")
            cursor.execute(f"SELECT * FROM `{table}` ORDER BY {order}")
            return [tuple(row) for row in cursor.fetchall()]
    finally:
        connection.close()


def query(settings: MySQLSettings, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    connection = mysql_connect(settings)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, args or None)
            return [tuple(row) for row in cursor.fetchall()]
    finally:
        connection.close()


@pytest.fixture(scope="module")
def seeded(servers: Servers, movielens_dir: Path) -> Iterator[MySQLSettings]:
    """One database seeded once with ml-latest-small for the read-only tests below."""
    name = f"chariot_t_{uuid.uuid4().hex[:12]}"
    admin = mysql_connect(servers.mysql)
    try:
        with admin.cursor() as cursor:
            cursor.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        settings = servers.mysql.model_copy(update={"database": name})
        seed_movielens(settings, movielens_dir)
        yield settings
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(scope="module")
def loaded(seeded: MySQLSettings) -> dict[str, list[tuple[Any, ...]]]:
    return {table: table_rows(seeded, table) for table in CSV_TYPES}


# -- exactness ----------------------------------------------------------------------------


def test_counts_match_the_release(loaded: dict[str, list[tuple[Any, ...]]]) -> None:
    counts = {table: len(rows) for table, rows in loaded.items()}
    assert counts == {"movies": 9_742, "links": 9_742, "ratings": 100_836, "tags": 3_683}


@pytest.mark.parametrize("table", list(CSV_TYPES))
def test_every_row_and_column_matches_the_csv(
    table: str, loaded: dict[str, list[tuple[Any, ...]]], movielens_dir: Path
) -> None:
    expected = csv_rows(movielens_dir, table)
    actual = loaded[table]
    assert len(actual) == len(expected)
    differences = [(a, e) for a, e in zip(actual, expected, strict=True) if a != e]
    assert differences == [], f"{len(differences)} rows differ, first: {differences[:3]}"


def test_quoted_titles_with_commas_quotes_and_accents(
    loaded: dict[str, list[tuple[Any, ...]]],
) -> None:
    titles = {row[0]: row[1] for row in loaded["movies"]}
    assert titles[29] == "City of Lost Children, The (Cité des enfants perdus, La) (1995)"
    assert titles[73] == "Misérables, Les (1995)"
    assert titles[7789] == "11'09\"01 - September 11 (2002)"  # "" inside a quoted field
    assert titles[284] == "New York Cop (Nyû Yôku no koppu) (1993)"


def test_trailing_spaces_of_titles_are_kept(loaded: dict[str, list[tuple[Any, ...]]]) -> None:
    trailing = [row[1] for row in loaded["movies"] if row[1] != row[1].rstrip()]
    assert len(trailing) == 11
    assert "From Dusk Till Dawn 2: Texas Blood Money (1999) " in trailing


def test_34_movies_have_no_genres_listed(seeded: MySQLSettings) -> None:
    assert query(seeded, "SELECT COUNT(*) FROM movies WHERE genres = '(no genres listed)'") == [
        (34,)
    ]


def test_12_titles_have_no_year(loaded: dict[str, list[tuple[Any, ...]]]) -> None:
    # "(2006–2007)" counts as a year suffix here; only titles with no year at all are listed.
    year_suffix = re.compile(r"\(\d{4}(?:–\d{4})?\)\s*$")
    without = sorted(row[1] for row in loaded["movies"] if not year_suffix.search(row[1]))
    assert len(without) == 12
    assert {"Babylon 5", "Black Mirror", "Cosmos", "The OA"} <= set(without)


def test_imdb_ids_keep_their_leading_zeros(seeded: MySQLSettings, movielens_dir: Path) -> None:
    assert query(seeded, "SELECT imdbId FROM links WHERE movieId = 1") == [("0114709",)]
    in_csv = sum(1 for row in csv_rows(movielens_dir, "links") if row[1].startswith("0"))
    assert query(seeded, "SELECT COUNT(*) FROM links WHERE imdbId LIKE '0%%'") == [(in_csv,)]
    assert in_csv > 7_000


def test_8_links_have_a_null_tmdb_id(seeded: MySQLSettings) -> None:
    rows = query(seeded, "SELECT movieId FROM links WHERE tmdbId IS NULL ORDER BY movieId")
    assert [row[0] for row in rows] == [791, 1107, 2851, 4051, 26587, 32600, 40697, 79299]
    assert query(seeded, "SELECT COUNT(*) FROM links WHERE tmdbId = 0") == [(0,)]


def test_tags_differing_only_in_case_are_distinct(seeded: MySQLSettings) -> None:
    assert query(seeded, "SELECT COUNT(DISTINCT tag), COUNT(DISTINCT LOWER(tag)) FROM tags") == [
        (1_589, 1_475)
    ]
    spellings = query(
        seeded, "SELECT DISTINCT tag FROM tags WHERE LOWER(tag) = 'funny' ORDER BY tag"
    )
    assert [row[0] for row in spellings] == ["Funny", "funny"]
    assert (
        query(seeded, "SELECT COUNT(*) FROM tags WHERE tag = 'funny'")[0][0]
        < query(seeded, "SELECT COUNT(*) FROM tags WHERE LOWER(tag) = 'funny'")[0][0]
    )


def test_a_doubled_quote_in_a_tag(seeded: MySQLSettings) -> None:
    rows = query(
        seeded,
        "SELECT tag FROM tags WHERE userId = 567 AND movieId = 4552 AND tag LIKE '%%artsy%%'",
    )
    assert rows == [('"artsy"',)]


def test_source_schema_as_specified(seeded: MySQLSettings) -> None:
    tables = query(
        seeded,
        "SELECT table_name, engine, table_collation FROM information_schema.tables "
        "WHERE table_schema = DATABASE() ORDER BY table_name",
    )
    assert tables == [
        (name, "InnoDB", "utf8mb4_unicode_ci") for name in ("links", "movies", "ratings", "tags")
    ]
    columns = {
        (row[0], row[1]): row[2:]
        for row in query(
            seeded,
            "SELECT table_name, column_name, column_type, is_nullable, collation_name "
            "FROM information_schema.columns WHERE table_schema = DATABASE()",
        )
    }
    assert columns[("tags", "tag")] == ("varchar(255)", "NO", "utf8mb4_bin")
    assert columns[("ratings", "rating")] == ("decimal(2,1)", "YES", None)
    assert columns[("links", "imdbId")][:2] == ("varchar(20)", "YES")
    assert columns[("movies", "title")][:2] == ("varchar(255)", "YES")
    keys = query(
        seeded,
        "SELECT table_name, GROUP_CONCAT(column_name ORDER BY ordinal_position) "
        "FROM information_schema.key_column_usage "
        "WHERE table_schema = DATABASE() AND constraint_name = 'PRIMARY' GROUP BY table_name",
    )
    assert dict(keys) == {
        "movies": "movieId",
        "links": "movieId",
        "ratings": "userId,movieId",
        "tags": "userId,movieId,tag",
    }


# -- loading behaviour --------------------------------------------------------------------


def test_seeding_twice_leaves_exactly_the_same_data(
    mysql_settings: MySQLSettings, movielens_dir: Path
) -> None:
    seed_movielens(mysql_settings, movielens_dir)
    first = {table: table_rows(mysql_settings, table) for table in CSV_TYPES}
    result = seed_movielens(mysql_settings, movielens_dir)
    second = {table: table_rows(mysql_settings, table) for table in CSV_TYPES}
    assert first == second
    assert result.rows == {"movies": 9_742, "links": 9_742, "ratings": 100_836, "tags": 3_683}
    # No staging or retired copies are left behind.
    assert sorted(row[0] for row in query(mysql_settings, "SHOW TABLES")) == sorted(
        t.name for t in SOURCE_TABLES
    )


def test_insert_fallback_gives_the_same_rows(
    mysql_settings: MySQLSettings, movielens_dir: Path
) -> None:
    result = seed_movielens(mysql_settings, movielens_dir, method=LoadMethod.insert)
    assert result.method == "insert"
    for table in CSV_TYPES:
        assert table_rows(mysql_settings, table) == csv_rows(movielens_dir, table), table


def test_auto_falls_back_when_the_server_refuses_local_infile(
    mysql_settings: MySQLSettings, movielens_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client without the LOCAL INFILE capability: the server really refuses LOAD DATA LOCAL."""
    from chariot.connections import mysql_connect

    def connect_without_local_infile(settings: MySQLSettings, **_: Any) -> Any:
        return mysql_connect(settings, local_infile=False)

    monkeypatch.setattr("chariot.seed.staged.mysql_connect", connect_without_local_infile)
    with pytest.raises(DataError, match="refuses LOAD DATA LOCAL INFILE"):
        seed_movielens(mysql_settings, movielens_dir, method=LoadMethod.load_data)
    result = seed_movielens(mysql_settings, movielens_dir, method=LoadMethod.auto)
    assert result.method == "insert"
    assert result.rows["ratings"] == 100_836
    assert table_rows(mysql_settings, "links") == csv_rows(movielens_dir, "links")


def test_crlf_files_load_like_lf_files(
    mysql_settings: MySQLSettings, movielens_dir: Path, tmp_path: Path
) -> None:
    for table in CSV_TYPES:
        lines = (movielens_dir / f"{table}.csv").read_bytes().splitlines()[:501]
        (tmp_path / f"{table}.csv").write_bytes(b"\r\n".join(lines) + b"\r\n")
    result = seed_movielens(mysql_settings, tmp_path)
    assert result.rows == dict.fromkeys(("movies", "links", "ratings", "tags"), 500)
    for table in CSV_TYPES:
        assert table_rows(mysql_settings, table) == csv_rows(tmp_path, table), table


def small_copy(movielens_dir: Path, target: Path, rows: int = 200) -> Path:
    """The first ``rows`` rows of each file: a scratch dataset to damage in a test."""
    target.mkdir(exist_ok=True)
    for table in CSV_TYPES:
        lines = (
            (movielens_dir / f"{table}.csv").read_text(encoding="utf-8").splitlines(keepends=True)
        )
        (target / f"{table}.csv").write_text("".join(lines[: rows + 1]), encoding="utf-8")
    return target


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("1,1,abc,964982703\n", "not loaded exactly"),  # not a number
        ("1,1,4.0,964982703\n", "not loaded exactly"),  # a duplicate key
        ("1,2\n", "not loaded exactly"),  # a missing column
    ],
)
@pytest.mark.parametrize("method", [LoadMethod.load_data, LoadMethod.insert])
def test_a_bad_row_fails_the_seed_and_keeps_the_old_data(
    mysql_settings: MySQLSettings,
    movielens_dir: Path,
    tmp_path: Path,
    damage: str,
    message: str,
    method: LoadMethod,
) -> None:
    good = small_copy(movielens_dir, tmp_path / "good")
    seed_movielens(mysql_settings, good)
    before = {table: table_rows(mysql_settings, table) for table in CSV_TYPES}
    bad = small_copy(movielens_dir, tmp_path / "bad", rows=100)
    with open(bad / "ratings.csv", "a", encoding="utf-8") as file:
        file.write(damage)
    with pytest.raises(DataError) as caught:
        seed_movielens(mysql_settings, bad, method=method)
    assert "\n" not in str(caught.value)
    if method is LoadMethod.load_data:
        assert message in str(caught.value)
    assert {table: table_rows(mysql_settings, table) for table in CSV_TYPES} == before
    assert len(query(mysql_settings, "SHOW TABLES")) == 4  # staging tables dropped


def test_a_missing_file_is_one_clear_line(
    mysql_settings: MySQLSettings, movielens_dir: Path, tmp_path: Path
) -> None:
    data = small_copy(movielens_dir, tmp_path / "data")
    (data / "tags.csv").unlink()
    with pytest.raises(DataError, match=r"tags\.csv: missing"):
        seed_movielens(mysql_settings, data)


def test_a_garbled_header_is_one_clear_line(
    mysql_settings: MySQLSettings, movielens_dir: Path, tmp_path: Path
) -> None:
    data = small_copy(movielens_dir, tmp_path / "data")
    (data / "movies.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage")
    with pytest.raises(DataError, match=r"movies\.csv: expected the header 'movieId,title,genres'"):
        seed_movielens(mysql_settings, data)


def test_cli_reports_bad_input_in_one_line(cli: Any, sql_settings: Any, tmp_path: Path) -> None:
    result = cli("seed", "movielens", "--dir", str(tmp_path / "nowhere"), settings=sql_settings)
    assert result.exit_code == DataError.exit_code
    assert "no such directory" in result.output
    assert "Traceback" not in result.output


def test_cli_seeds_with_json_output(cli: Any, sql_settings: Any, movielens_dir: Path) -> None:
    import json

    result = cli("seed", "movielens", "--dir", str(movielens_dir), "--json", settings=sql_settings)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["rows"] == {"movies": 9_742, "links": 9_742, "ratings": 100_836, "tags": 3_683}
    assert payload["method"] == "load-data"
    assert payload["dataset"] == "movielens"


def test_cli_seeds_with_a_table(cli: Any, sql_settings: Any, movielens_dir: Path) -> None:
    result = cli(
        "seed",
        "movielens",
        "--dir",
        str(movielens_dir),
        "--method",
        "insert",
        settings=sql_settings,
    )
    assert result.exit_code == 0, result.output
    assert "100,836" in result.stdout
    assert "multi-row INSERT" in result.stdout


def test_create_source_tables_is_idempotent(mysql_settings: MySQLSettings) -> None:
    assert create_source_tables(mysql_settings) == ["movies", "links", "ratings", "tags"]
    query(mysql_settings, "SELECT 1")
    connection = mysql_connect(mysql_settings)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tags VALUES (1, 1, 'Funny', 1), (1, 1, 'funny', 2)"
        )  # binary key
    connection.commit()
    connection.close()
    create_source_tables(mysql_settings)  # keeps the rows
    assert query(mysql_settings, "SELECT COUNT(*) FROM tags") == [(2,)]
    create_source_tables(mysql_settings, replace=True)
    assert query(mysql_settings, "SELECT COUNT(*) FROM tags") == [(0,)]


def test_a_non_mysql_source_is_a_config_error(tmp_path: Path) -> None:
    """Refused before any file is read: needs no MovieLens data."""
    settings = MySQLSettings(url="sqlite:///nowhere.db")
    with pytest.raises(ConfigError, match="needs a MySQL/MariaDB source"):
        seed_movielens(settings, tmp_path)


# -- download -----------------------------------------------------------------------------


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


def test_download_offline_fails_in_one_line_suggesting_dir(empty_cache: Path) -> None:
    """The real GroupLens URL: offline here, so it fails (online it must verify instead)."""
    try:
        directory, downloaded = cached_movielens_small(timeout=5)
    except DataError as error:
        message = str(error)
        assert "\n" not in message
        assert "--dir" in message
        assert "files.grouplens.org" in message
    else:  # online: the download must have been verified and cached
        assert downloaded and directory == empty_cache / "chariot" / "ml-latest-small"


def test_download_from_a_closed_port_fails_in_one_line(empty_cache: Path) -> None:
    with pytest.raises(DataError, match=r"could not download .*; pass --dir PATH") as caught:
        cached_movielens_small(url="http://127.0.0.1:9/ml-latest-small.zip", timeout=2)
    assert "\n" not in str(caught.value)
    assert not (empty_cache / "chariot" / "ml-latest-small").exists()


def make_zip(source: Path, archive: Path, tamper: str | None = None) -> str:
    with zipfile.ZipFile(archive, "w") as bundle:
        for name in [*EXPECTED_FILES, "README.txt"]:
            data = (source / name).read_bytes()
            if name == tamper:
                data = data.replace(b"Toy Story", b"Toy Storm")
            bundle.writestr(f"ml-latest-small/{name}", data)
    return archive.as_uri()


def test_download_is_verified_and_cached(
    empty_cache: Path, movielens_dir: Path, tmp_path: Path
) -> None:
    url = make_zip(movielens_dir, tmp_path / "ml-latest-small.zip")
    directory, downloaded = cached_movielens_small(url=url)
    assert downloaded
    assert directory == empty_cache / "chariot" / "ml-latest-small"
    assert (directory / "README.txt").is_file()  # the licence travels with the data
    again, downloaded_again = cached_movielens_small(url="http://127.0.0.1:9/unused.zip")
    assert (again, downloaded_again) == (directory, False)  # served from the cache, no network


def test_a_download_with_a_wrong_checksum_is_refused(
    empty_cache: Path, movielens_dir: Path, tmp_path: Path
) -> None:
    url = make_zip(movielens_dir, tmp_path / "ml-latest-small.zip", tamper="movies.csv")
    with pytest.raises(
        DataError, match=r"does not match the expected release: movies\.csv has md5"
    ):
        cached_movielens_small(url=url)
    assert not (empty_cache / "chariot" / "ml-latest-small").exists()


def test_cli_without_dir_offline_exits_with_the_data_error(
    cli: Any, sql_settings: Any, tmp_path: Path
) -> None:
    result = cli(
        "seed", "movielens", settings=sql_settings, env={"XDG_CACHE_HOME": str(tmp_path / "cache")}
    )
    if result.exit_code == 0:  # online: it downloaded and seeded
        assert "downloaded" in result.stdout
        return
    assert result.exit_code == DataError.exit_code
    assert "--dir" in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_corrupt_cache_is_replaced(empty_cache: Path, movielens_dir: Path, tmp_path: Path) -> None:
    cached = empty_cache / "chariot" / "ml-latest-small"
    shutil.copytree(movielens_dir, cached)
    (cached / "tags.csv").write_text("userId,movieId,tag,timestamp\n", encoding="utf-8")
    url = make_zip(movielens_dir, tmp_path / "ml-latest-small.zip")
    directory, downloaded = cached_movielens_small(url=url)
    assert downloaded
    assert (directory / "tags.csv").stat().st_size == EXPECTED_FILES["tags.csv"][0]
