"""Finding and reading ``chariot.toml``: every problem is a ``ConfigError`` (exit 2) that
names the file, the key path and what was expected."""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from chariot.errors import ConfigError
from chariot.project.model import TRANSFORM_KINDS, Project, Python
from chariot.project.references import Problem, check_references

PROJECT_FILE = "chariot.toml"
PROJECT_VARIABLE = "CHARIOT_PROJECT"
HINT = f"run `chariot init` to write one, or pass --project PATH (or set {PROJECT_VARIABLE})"
# More problems than this go into the hint as a count only.
LISTED_PROBLEMS = 5


def project_path(path: Path | None = None, *, cwd: Path | None = None) -> Path:
    """Where the project file is: ``path`` (a file, or a folder holding chariot.toml), else
    ``$CHARIOT_PROJECT``, else ``chariot.toml`` in ``cwd`` (default: the working directory).
    It may not exist yet."""
    if path is None and os.environ.get(PROJECT_VARIABLE):
        path = Path(os.environ[PROJECT_VARIABLE])
    if path is None:
        return (cwd or Path.cwd()) / PROJECT_FILE
    return path / PROJECT_FILE if path.is_dir() else path


def load_project(path: Path | None = None, *, cwd: Path | None = None) -> Project:
    """Read and validate the project file (see ``project_path``)."""
    file = project_path(path, cwd=cwd)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no project file {file}", hint=HINT) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{file}: cannot be read: {error}") from None
    return parse_project(text, file=str(file))


def parse_project(text: str, *, file: str = PROJECT_FILE) -> Project:
    """Validate project text; ``file`` is only used in error messages."""
    try:
        # Decimals, not floats: value rules and histogram bins must be exact (0.1 stays 0.1).
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{file}: not valid TOML: {error}") from None
    return validate_project(data, file=file)


def validate_project(data: dict[str, Any], *, file: str = PROJECT_FILE) -> Project:
    try:
        project = Project.model_validate(data)
    except ValidationError as error:
        # A misspelt key also shows up as a missing one: name the misspelling first.
        details = sorted(error.errors(), key=lambda d: d["type"] != "extra_forbidden")
        raise problems_error(file, [_problem(detail) for detail in details]) from None
    problems = check_references(project) or unknown_functions(project)
    if problems:
        raise problems_error(file, problems)
    project._file = file
    return project


def unknown_functions(project: Project) -> list[Problem]:
    """Each ``python`` transform whose function no installed plugin registers."""
    from chariot.plugins import TRANSFORM_GROUP, transform_names

    wanted = [
        (f"tables.{name}.transforms[{index}].function", transform.function)
        for name, table in project.tables.items()
        for index, transform in enumerate(table.transforms)
        if isinstance(transform, Python)
    ]
    if not wanted:
        return []  # no entry point scan for projects without Python transforms
    names = transform_names()
    known = ", ".join(names) or "none"
    return [
        Problem(
            path,
            f"no Python transform {function!r} is installed (the {TRANSFORM_GROUP!r} "
            f"entry point group holds: {known})",
        )
        for path, function in wanted
        if function not in names
    ]


def problems_error(file: str, problems: list[Problem]) -> ConfigError:
    """One ``ConfigError`` for a list of problems: the first in full, the others in the hint."""
    first, rest = problems[0], problems[1:]
    if not rest:
        return ConfigError(first.describe(file))
    listed = "; ".join(f"{p.path}: {p.message}" for p in rest[:LISTED_PROBLEMS])
    more = len(rest) - LISTED_PROBLEMS
    suffix = f"; and {more} more" if more > 0 else ""
    return ConfigError(
        f"{first.describe(file)} (and {len(rest)} more problem{'s' if len(rest) > 1 else ''})",
        hint=f"also: {listed}{suffix}",
    )


def _problem(detail: Any) -> Problem:
    return Problem(key_path(detail["loc"]), _expected(detail))


def key_path(location: tuple[Any, ...]) -> str:
    """``("tables", "movies", "transforms", 1, "split", "delimiter")`` ->
    ``tables.movies.transforms[1].delimiter`` (pydantic's union tag is not a key)."""
    parts: list[str] = []
    for position, part in enumerate(location):
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
            continue
        after_index = position > 0 and isinstance(location[position - 1], int)
        if after_index and part in TRANSFORM_KINDS and position + 1 < len(location):
            continue
        if part == "[key]":  # pydantic marks an invalid dict key so
            parts[-1] += " (the name)"
            continue
        parts.append(str(part) if _bare(str(part)) else f'"{part}"')
    return ".".join(parts) or "(top level)"


def _bare(key: str) -> bool:
    return bool(key) and all(ch.isalnum() or ch in "_-" for ch in key)


_MESSAGES = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key (a typo?)",
}


def _expected(detail: Any) -> str:
    kind = detail["type"]
    if kind in _MESSAGES:
        return str(_MESSAGES[kind])
    message = str(detail["msg"])
    if kind in ("model_type", "dict_type"):
        return f"expected a table, got {_kind_of(detail.get('input'))}"
    if kind == "string_pattern_mismatch":
        return f"expected a name matching {detail['ctx']['pattern']}, got {detail['input']!r}"
    message = message.removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = "expected " + message.removeprefix("Input should be ")
        if not isinstance(detail.get("input"), dict | list):
            message += f", got {detail.get('input')!r}"
    return message


def _kind_of(item: Any) -> str:
    names = {str: "a string", list: "a list", bool: "a boolean", int: "a number"}
    return next((name for kind, name in names.items() if isinstance(item, kind)), "a value")
