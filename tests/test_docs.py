"""The README is the manual: every command and every option appears in it, every
setting is in the configuration reference and in .env.example."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from chariot.config import Settings
from tests.test_cli_basics import ALL_COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
ENV_EXAMPLE = (ROOT / ".env.example").read_text(encoding="utf-8")
TYPER_BUILTINS = {"--install-completion", "--show-completion", "--help"}


def _options(command: Any) -> list[str]:
    return [
        option
        for parameter in command.params
        if getattr(parameter, "param_type_name", "") == "option"
        for option in parameter.opts
        if option.startswith("--") and option not in TYPER_BUILTINS
    ]


@pytest.mark.parametrize(
    ("path", "command"), ALL_COMMANDS, ids=lambda p: " ".join(p) if isinstance(p, tuple) else ""
)
def test_every_command_and_option_is_in_the_readme(path: tuple[str, ...], command: Any) -> None:
    if path:
        assert f"chariot {' '.join(path)}" in README, (
            f"`chariot {' '.join(path)}` is not in README.md"
        )
    for option in _options(command):
        assert re.search(rf"{re.escape(option)}\b", README), (
            f"option {option} of `chariot {' '.join(path)}` is not in README.md"
        )


def _setting_variables() -> list[str]:
    names = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        names += [f"CHARIOT_{section.upper()}__{name.upper()}" for name in model.model_fields]
    return names


@pytest.mark.parametrize("variable", _setting_variables())
def test_every_setting_is_documented_in_the_readme_and_env_example(variable: str) -> None:
    assert variable in README, f"{variable} is missing from the configuration reference"
    assert variable in ENV_EXAMPLE, f"{variable} is missing from .env.example"


def test_every_exit_code_is_documented() -> None:
    from chariot import errors

    codes = {
        cls.exit_code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.ChariotError)
    }
    table = README.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in codes | {0, 1, 130}:
        assert re.search(rf"^\| `?{code}`? ", table, re.MULTILINE), (
            f"exit code {code} is not documented"
        )
