"""The documentation site (docs/, built by `make docs`) documents everything a user can type
or set: every command and option on its command's page, every setting in the configuration
reference and .env.example, every exit code on the exit-codes page (generated, and current).

Fast and server-free: it reads the Markdown sources, it does not build the site.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

from chariot.config import DOCUMENTED_NAMES, Settings
from chariot.exit_codes import ExitCode
from tests.test_cli_basics import ALL_COMMANDS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
MKDOCS_YML = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
CONFIGURATION_PAGE = DOCS / "reference" / "configuration.md"
EXIT_CODES_PAGE = DOCS / "reference" / "exit-codes.md"
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


def _exit_codes_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "exit_codes_page", ROOT / "scripts/exit_codes_page.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_exit_codes_page_is_generated_from_the_table() -> None:
    assert _text(EXIT_CODES_PAGE) == _exit_codes_generator().render(), (
        "docs/reference/exit-codes.md is stale: run `make docs` (scripts/exit_codes_page.py)"
    )


@pytest.mark.parametrize("code", list(ExitCode), ids=lambda code: code.kind)
def test_every_exit_code_and_kind_is_documented(code: ExitCode) -> None:
    row = rf"^\| `{int(code)}` \| `{code.kind}` \| \S"
    assert re.search(row, _text(EXIT_CODES_PAGE), re.MULTILINE), f"exit code {code!r}"


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
