"""Fetching ml-latest-small from GroupLens once, verified, into the user's cache directory."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from chariot.errors import DataError

MOVIELENS_SMALL_URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
DATASET_DIR_NAME = "ml-latest-small"

# (size in bytes, md5) of each CSV of the 2018-09-26 release. The zip itself is not
# checked: what we load are the CSVs, and these are the published checksums.
EXPECTED_FILES: dict[str, tuple[int, str]] = {
    "links.csv": (188_236, "bc5292d5185e8c5fd8dc9a83fb2198d2"),
    "movies.csv": (484_688, "b252328d16b085936b56eefad880ef9d"),
    "ratings.csv": (2_382_886, "ac0cf1d26aed3a5b6777a295231976ad"),
    "tags.csv": (114_976, "5d095828cb668ec2fae1e2cf0d99c671"),
}


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/chariot``, else ``~/.cache/chariot``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chariot"


def cached_movielens_small(
    *, url: str = MOVIELENS_SMALL_URL, timeout: float = 30.0
) -> tuple[Path, bool]:
    """The directory of a verified ml-latest-small, downloading it if needed.

    Returns (directory, downloaded). Fails with one ``DataError`` line when offline.
    """
    target = cache_dir() / DATASET_DIR_NAME
    if target.is_dir() and not verification_problems(target):
        return target, False
    with tempfile.TemporaryDirectory(prefix="chariot-download-") as scratch:
        archive = Path(scratch) / "ml-latest-small.zip"
        _download(url, archive, timeout)
        extracted = _extract(archive, Path(scratch) / "extracted")
        problems = verification_problems(extracted)
        if problems:
            raise DataError(f"downloaded {url} does not match the expected release: {problems[0]}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(extracted), str(target))
    return target, True


def verification_problems(directory: Path) -> list[str]:
    """What differs from the expected CSVs (size, then md5); empty when all match."""
    problems = []
    for name, (size, md5) in EXPECTED_FILES.items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != size:
            problems.append(f"{name} has {path.stat().st_size} bytes, expected {size}")
        elif _md5(path) != md5:
            problems.append(f"{name} has md5 {_md5(path)}, expected {md5}")
    return problems


def _download(url: str, destination: Path, timeout: float) -> None:
    import urllib.error
    import urllib.request

    try:
        with (
            urllib.request.urlopen(url, timeout=timeout) as response,
            open(destination, "wb") as out,
        ):
            shutil.copyfileobj(response, out, length=1 << 20)
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        reason = getattr(error, "reason", None) or error
        raise DataError(
            f"could not download {url} ({reason}); pass --dir PATH to an extracted ml-latest-small"
        ) from None


def _extract(archive: Path, destination: Path) -> Path:
    """Extract the CSVs and README.txt (its licence travels with the data)."""
    wanted = {*EXPECTED_FILES, "README.txt"}
    destination.mkdir()
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                name = Path(member.filename).name
                if name in wanted and not member.is_dir():
                    with bundle.open(member) as source, open(destination / name, "wb") as out:
                        shutil.copyfileobj(source, out, length=1 << 20)
    except zipfile.BadZipFile as error:
        raise DataError(f"downloaded archive is not a valid zip file: {error}") from None
    return destination


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
