"""Where the tests' MovieLens data comes from, and `make test` stopping early without it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.movielens_data import ENV_VARIABLE, resolve_movielens

ROOT = Path(__file__).resolve().parents[1]
CSV_FILES = ("movies.csv", "links.csv", "ratings.csv", "tags.csv")


def test_the_variable_wins_when_it_holds_the_files(tmp_path: Path) -> None:
    for name in CSV_FILES:
        (tmp_path / name).write_text("header\n", encoding="utf-8")
    assert resolve_movielens(str(tmp_path)).directory == tmp_path.resolve()


def test_a_variable_without_the_files_is_one_line_saying_how_to_provide_them(
    tmp_path: Path,
) -> None:
    data = resolve_movielens(str(tmp_path))
    assert data.directory is None
    assert "\n" not in data.message
    assert f"{ENV_VARIABLE}={tmp_path} has no movies.csv" in data.message
    assert "make movielens" in data.message


def test_without_the_variable_the_seed_cache_is_used(
    movielens_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = tmp_path / "chariot" / "ml-latest-small"
    cached.mkdir(parents=True)
    for name in CSV_FILES:
        shutil.copy(movielens_dir / name, cached / name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert resolve_movielens("").directory == cached  # verified copy: no network


def _pytest(*args: str, movielens: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHARIOT_REQUIRE_SERVICES": "1", ENV_VARIABLE: str(movielens)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_make_test_stops_before_any_test_when_the_data_is_missing(tmp_path: Path) -> None:
    completed = _pytest("tests/test_seed_movielens.py", "--collect-only", movielens=tmp_path)
    assert completed.returncode == pytest.ExitCode.USAGE_ERROR, completed.stdout
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and "MovieLens ml-latest-small is missing" in lines[0], lines


def test_tests_without_data_run_when_it_is_missing(tmp_path: Path) -> None:
    completed = _pytest("tests/test_config.py", "--collect-only", movielens=tmp_path)
    assert completed.returncode == pytest.ExitCode.OK, completed.stdout + completed.stderr
