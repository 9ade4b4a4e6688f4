"""The documentation site (docs/, built by `make docs`) documents everything a user can type
or set: every command and option on its command's page, every setting in the configuration
reference and .env.example, every exit code on the exit-codes page and every key of the
project file on its reference page (both generated, and current).

Fast and server-free: it reads the Markdown sources, it does not build the site.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import types
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

from chariot.config import DOCUMENTED_NAMES, Settings
from chariot.exit_codes import ExitCode
from chariot.project.model import Project
from tests.test_cli_basics import ALL_COMMANDS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
MKDOCS_YML = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
CONFIGURATION_PAGE = DOCS / "reference" / "configuration.md"
EXIT_CODES_PAGE = DOCS / "reference" / "exit-codes.md"
PROJECT_FILE_PAGE = DOCS / "reference" / "project-file.md"
TYPER_BUILTINS = {"--install-completion", "--show-completion", "--help"}
# CHARIOT_* names that are not settings of chariot.config.Settings, and where they are read.
# Variables the project documents that are not settings (tests, make, plugins): one list,
# the one the misspelt-setting warning also uses.
NOT_SETTINGS = set(DOCUMENTED_NAMES)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _command_page(path: tuple[str, ...]) -> Path:
    """`chariot` itself (global options) on the overview; each command on its own page."""
    return DOCS / "commands" / (f"{path[0]}.md" if path else "index.md")


def _options(command: Any) -> list[str]:
    return [
        option
        for parameter in command.params
        if getattr(parameter, "param_type_name", "") == "option"
        for option in parameter.opts + parameter.secondary_opts
        if option.startswith("--") and option not in TYPER_BUILTINS
    ]


COMMAND_IDS = [" ".join(path) or "chariot" for path, _ in ALL_COMMANDS]


@pytest.mark.parametrize(("path", "command"), ALL_COMMANDS, ids=COMMAND_IDS)
def test_every_command_is_on_its_page(path: tuple[str, ...], command: Any) -> None:
    page = _command_page(path)
    assert page.is_file(), f"`chariot {' '.join(path)}` has no page {page.relative_to(ROOT)}"
    assert f"chariot {' '.join(path)}".strip() in _text(page)


@pytest.mark.parametrize(("path", "command"), ALL_COMMANDS, ids=COMMAND_IDS)
def test_every_option_is_on_its_command_page(path: tuple[str, ...], command: Any) -> None:
    page = _command_page(path)
    text = _text(page)
    for option in _options(command):
        assert re.search(rf"{re.escape(option)}(?![\w-])", text), (
            f"option {option} of `chariot {' '.join(path)}` is not in {page.relative_to(ROOT)}"
        )


def _setting_variables() -> list[str]:
    names = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        names += [f"CHARIOT_{section.upper()}__{name.upper()}" for name in model.model_fields]
    return names


@pytest.mark.parametrize("variable", _setting_variables())
def test_every_setting_is_in_the_configuration_reference_and_env_example(variable: str) -> None:
    assert re.search(rf"^\| `{variable}` \|", _text(CONFIGURATION_PAGE), re.MULTILINE), (
        f"{variable} has no row in {CONFIGURATION_PAGE.relative_to(ROOT)}"
    )
    assert variable in ENV_EXAMPLE, f"{variable} is missing from .env.example"


def test_the_docs_name_no_setting_that_does_not_exist() -> None:
    known = set(_setting_variables()) | NOT_SETTINGS
    for page in DOCS.rglob("*.md"):
        for name in re.findall(r"CHARIOT_[A-Z0-9_]*[A-Z0-9]", _text(page)):
            if not name.endswith(("_MYSQL", "_POSTGRES", "_NEO4J", "_RUN")):  # CHARIOT_RUN__*
                assert name in known, f"{page.relative_to(ROOT)} names unknown setting {name}"


def _generator(name: str) -> ModuleType:
    """A page generator of scripts/ (not a package: loaded from its file)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_exit_codes_page_is_generated_from_the_table() -> None:
    assert _text(EXIT_CODES_PAGE) == _generator("exit_codes_page").render(), (
        "docs/reference/exit-codes.md is stale: run `make docs` (scripts/exit_codes_page.py)"
    )


@pytest.mark.parametrize("code", list(ExitCode), ids=lambda code: code.kind)
def test_every_exit_code_and_kind_is_documented(code: ExitCode) -> None:
    row = rf"^\| `{int(code)}` \| `{code.kind}` \| \S"
    assert re.search(row, _text(EXIT_CODES_PAGE), re.MULTILINE), f"exit code {code!r}"


def test_the_project_file_page_is_generated_from_the_models() -> None:
    assert _text(PROJECT_FILE_PAGE) == _generator("project_file_page").render(), (
        "docs/reference/project-file.md is stale: run `make docs` (scripts/project_file_page.py)"
    )


def _key_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key path of the project file, walked from the models themselves:
    ``tables.*.columns.*.nullable``, ``graph.relationships[].from.label``."""
    paths = []
    for name, field in model.model_fields.items():
        path = prefix + (field.alias or name)
        paths.append(path)
        for step, child in _nested_models(field.annotation):
            paths += _key_paths(child, f"{path}{step}.")
    return paths


def _nested_models(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """The models a value holds, each with the path step to it: "" (the value is one),
    ".*" (a table of them, under names the user chooses), "[]" (an array of them)."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    if origin in (types.UnionType, typing.Union):  # optional, or the kinds of transform
        return [nested for member in arguments for nested in _nested_models(member)]
    if origin is list:
        return [("[]" + step, model) for step, model in _nested_models(arguments[0])]
    if origin is dict:
        return [(".*" + step, model) for step, model in _nested_models(arguments[1])]
    return []


def _documented_key_paths() -> set[str]:
    """The key paths the page documents: each section's "Key path: `tables.NAME.KEY`" line
    with each key of its table, NAME/COLUMN/LABEL as * and [N] as []."""
    documented = set()
    for section in re.split(r"^#{2,3} ", _text(PROJECT_FILE_PAGE), flags=re.MULTILINE):
        line = re.search(r"^Key paths?: (.+)$", section, re.MULTILINE)
        if line is None:
            continue
        keys = re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE)
        assert keys, f"no keys under {line[0]}"
        for pattern in re.findall(r"`([^`]+)`", line[1]):
            assert re.fullmatch(r"(.+\.)?KEY", pattern), f"{pattern!r} should end with KEY"
            prefix = pattern.removesuffix("KEY")
            for key in keys:
                path = (prefix + key).replace("[N]", "[]")
                documented.add(re.sub(r"(?<![^.])[A-Z]+(?=[.\[]|$)", "*", path))
    return documented


# The transforms share keys (`into`): each path once.
@pytest.mark.parametrize("path", list(dict.fromkeys(_key_paths(Project))))
def test_every_project_file_key_is_documented(path: str) -> None:
    assert path in _documented_key_paths(), (
        f"project-file key {path} is not in {PROJECT_FILE_PAGE.relative_to(ROOT)}: give it a "
        "Field(description=...) and run `make docs` (scripts/project_file_page.py)"
    )


def test_the_project_file_page_documents_no_key_that_does_not_exist() -> None:
    unknown = _documented_key_paths() - set(_key_paths(Project))
    assert not unknown, f"{PROJECT_FILE_PAGE.relative_to(ROOT)} documents unknown keys {unknown}"


def test_every_page_is_in_the_navigation() -> None:
    for page in DOCS.rglob("*.md"):
        assert f" {page.relative_to(DOCS).as_posix()}\n" in MKDOCS_YML, (
            f"{page.relative_to(ROOT)} is not in the nav of mkdocs.yml"
        )


def test_the_readme_links_into_pages_that_exist() -> None:
    readme = _text(ROOT / "README.md")
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", readme)
    assert links, "README.md should link into docs/"
    for link in links:
        assert (ROOT / link).is_file(), f"README.md links to missing {link}"
