"""Render docs/reference/project-file.md from the project file's models (run by `make docs`).

    python scripts/project_file_page.py            # (re)write the page
    python scripts/project_file_page.py --check    # exit 1 when the committed page is stale

Every key's type, default and meaning come from the pydantic models in src/chariot/project/
(their ``Field(description=...)`` and docstrings), the examples from
examples/movielens/chariot.toml and the type mappings from ``chariot.project.column_types``,
so the page cannot drift from the code. A key without a description, or a model this script
has no section for, is an error here. tests/test_docs.py checks that the committed page
equals ``render()`` and that every key path of the models is on it.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from chariot.errors import ConfigError
from chariot.project import aggregations, column_types, graph, outputs
from chariot.project.aggregations import Aggregation, Join, Statistic
from chariot.project.base import Strict
from chariot.project.graph import Endpoint, Graph, NodeExtension, NodeLabel, Relationship
from chariot.project.loading import parse_project
from chariot.project.model import (
    Cast,
    Column,
    Extract,
    Project,
    Python,
    Rename,
    Split,
    Table,
    TableReference,
)

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reference" / "project-file.md"
EXAMPLE = ROOT / "examples" / "movielens" / "chariot.toml"
EXAMPLE_NAME = "examples/movielens/chariot.toml"

# What a name chosen by the user is called in key paths, by the field of the dict it keys.
PLACEHOLDERS = {
    "tables": "NAME",
    "columns": "COLUMN",
    "nodes": "LABEL",
    "aggregations": "NAME",
    "statistics": "COLUMN",
}


@dataclass(frozen=True)
class Section:
    """The hand-written frame of one model's section; the keys come from the model."""

    title: str
    anchor: str
    level: int = 2
    before: str = ""  # Markdown before the heading (a parent heading with its own text)
    intro: str = ""  # after the model's docstring
    notes: str = ""  # after the table of keys
    # (TOML header, text the block contains): after the table, or after ``before`` if any.
    examples: tuple[tuple[str, str], ...] = ()


def _doc(module: types.ModuleType, first: int) -> str:
    """A module docstring from its paragraph ``first`` on, as Markdown."""
    paragraphs = (module.__doc__ or "").strip().split("\n\n")
    return _markdown("\n\n".join(paragraphs[first:]))


def _markdown(text: str) -> str:
    # ``code`` -> `code`, kept on one line (a docstring may wrap inside one).
    code = re.compile(r"``(.+?)``", re.DOTALL)
    return code.sub(lambda m: "`" + " ".join(m[1].split()) + "`", inspect.cleandoc(text))


def _mapping_rules() -> str:
    """The bullet list of ``chariot.project.column_types``' docstring."""
    text = column_types.__doc__ or ""
    return _markdown(text[text.index("\n* ") :])


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(f"`{value}`" for value in values)


SECTIONS: dict[type[BaseModel], Section] = {
    Project: Section(
        "Top level",
        "top-level",
        examples=(("", ""),),
    ),
    Table: Section(
        "Tables: `[tables.NAME]`",
        "tables",
        intro="`NAME` is the table's name in Chariot: the PostgreSQL table it writes has this "
        "name, and `[graph]` and `[aggregations]` refer to the table by it. `columns` and "
        "`transforms` name source columns; the transforms turn them into the table's "
        "*output* columns, which PostgreSQL stores and `[graph]` and `[aggregations]` name.",
        examples=(("[tables.ratings]", ""),),
    ),
    Column: Section(
        "Columns: `[tables.NAME.columns]`",
        "columns",
        intro="One key per source column, its value an inline table: "
        '`COLUMN = { type = "int" }`. Write the columns in the order the source has them.',
        notes=f"`postgres` is one of {_choices(column_types.POSTGRES_TYPES)}, or "
        "`numeric(p)` or `numeric(p,s)`. `neo4j` is one of "
        f"{_choices(column_types.NEO4J_TYPES)}.\n\n"
        "### Type mappings {#column-types}\n\n"
        "Write `type` the way MySQL spells it, in lower case and without display widths "
        "(`smallint unsigned`, `decimal(4,2)`, `enum('G','PG')`); only `tinyint(1)`, MySQL's "
        "boolean, keeps its width. Where `postgres` or `neo4j` is not given, it is mapped "
        "from `type`:\n\n" + _mapping_rules(),
        examples=(("[tables.ratings.columns]", ""),),
    ),
    TableReference: Section(
        "References: `references = [...]`",
        "references",
        level=3,
        intro="An array of inline tables in `[tables.NAME]`: "
        '`references = [{ table = "movies", columns = ["movieId"] }]`. `chariot init` writes '
        "one per foreign key to another table's primary key; declare the others yourself "
        "(MovieLens declares none in its schema).",
    ),
    Split: Section(
        "`split`",
        "split",
        level=3,
        before="## Transforms: `transforms = [...]` {#transforms}\n\n"
        "`transforms` in `[tables.NAME]` is an array of inline tables, each one transform. "
        "Its kind is the key that names the column it reads: "
        '`{ split = "genres", delimiter = "|" }` splits the column `genres`. ' + _doc(outputs, 1),
        examples=(("[tables.movies]", ""),),
    ),
    Extract: Section("`extract`", "extract", level=3),
    Rename: Section("`rename`", "rename", level=3),
    Cast: Section("`cast`", "cast", level=3),
    Python: Section(
        "`python`",
        "python",
        level=3,
        intro='`{ python = "title", function = "slugify", to = "text", into = "slug" }` '
        "stores `slugify(title)` as the column `slug`. A project naming a function no "
        "installed plugin registers is refused when it is read (exit 2).",
    ),
    Graph: Section("Graph: `[graph]`", "graph", intro=_doc(graph, 1)),
    NodeLabel: Section(
        "Node labels: `[graph.nodes.LABEL]`",
        "nodes",
        intro="Give either `table` or `values`.",
        examples=(
            ("[graph.nodes.Movie]", ""),
            ("[graph.nodes.User]", ""),
            ("[graph.nodes.Genre]", ""),
        ),
    ),
    NodeExtension: Section("`extended_by`", "extended-by", level=3),
    Relationship: Section(
        "Relationships: `[[graph.relationships]]`",
        "relationships",
        intro="Each `[[graph.relationships]]` adds one element to the array.",
        examples=(("[[graph.relationships]]", 'type = "TAGGED"'),),
    ),
    Endpoint: Section("`from` and `to`", "from-and-to", level=3),
    Aggregation: Section(
        "Aggregations: `[aggregations.NAME]`",
        "aggregations",
        intro="`NAME` is the summary table's name in PostgreSQL.",
        examples=(("[aggregations.movie_stats]", ""), ("[aggregations.genre_stats]", "")),
    ),
    Join: Section("`join`", "join", level=3),
    Statistic: Section(
        "Statistics: `[aggregations.NAME.statistics]`",
        "statistics",
        intro=_doc(aggregations, 1),
        examples=(
            ("[aggregations.movie_stats.statistics]", ""),
            ("[aggregations.genre_stats.statistics]", ""),
        ),
    ),
}

HEADER = """\
# The project file: `chariot.toml`

<!-- Generated by scripts/project_file_page.py from the models in src/chariot/project/ and
     from examples/movielens/chariot.toml: edit there. -->

`chariot.toml` describes your data to Chariot: the source tables to copy, their keys,
columns and types, the transforms that turn source columns into the columns PostgreSQL
stores, the graph model Neo4j holds, and the aggregations to compute. It is
[TOML](https://toml.io/). [`chariot init`](../commands/init.md) writes a first one by reading
your source's catalog; `examples/movielens/chariot.toml` in the repository is a complete one,
and every example on this page is taken from it.

Every command reads it: `sync`, `aggregate`, `audit`, `run` and `status` work on the tables,
graph and aggregations it declares, and nothing else. It is `chariot.toml` in the working
directory, or the file (or folder) the global `--project PATH` or `CHARIOT_PROJECT` names;
`chariot init` writes it there.

## Reading this page {#reading-this-page}

Each section below is one level of the file: a table of its keys, each with its type,
whether it is required, its default and its meaning, then an example. A **key path** is how an
error message names a key: `NAME`, `COLUMN` and `LABEL` stand for names you choose, `N` for a
position in an array (from 0).

{strict} A reference to something the file does not define (a key column that is not a
column, a relationship to a label nothing defines) is an error too. Each error is one line
naming the file, the key path and what was expected, and the command exits with code 2:

```text
Error: {error}
```

Numbers are read exactly as written (`0.1` stays 0.1, never a nearby binary fraction), so
value rules and histogram bins compare exactly.
"""


def render() -> str:
    example = EXAMPLE.read_text(encoding="utf-8")
    strict = _markdown(Strict.__doc__ or "")
    parts = [HEADER.replace("{strict}", strict).replace("{error}", _sample_error(example))]
    for model, paths, key_rule in _sections():
        parts.append(_section(model, paths, key_rule, example))
    return "\n".join(parts)


def _sample_error(example: str) -> str:
    broken = example.replace('delimiter = "|", ', "")
    if broken == example:
        raise ValueError(f"{EXAMPLE_NAME}: no split delimiter to leave out for the sample error")
    try:
        parse_project(broken)
    except ConfigError as error:
        return str(error)
    raise ValueError("the sample error did not happen")


# -- walking the models ---------------------------------------------------------------------


def _sections() -> list[tuple[type[BaseModel], list[str], str | None]]:
    """Every model under ``Project`` once, in file order, with the key paths it sits at and
    the pattern the name that keys it must match (None when no dict keys it)."""
    found: dict[type[BaseModel], tuple[list[str], str | None]] = {}

    def visit(model: type[BaseModel], path: str, key_rule: str | None) -> None:
        if model not in SECTIONS:
            raise KeyError(f"no section for {model.__name__}: add it to SECTIONS")
        paths, _ = found.setdefault(model, ([], key_rule))
        paths.append(path)
        for name, field in model.model_fields.items():
            key = field.alias or name
            for suffix, rule, child in _children(field.annotation, key):
                visit(child, _join(path, key) + suffix, rule)

    visit(Project, "", None)
    return [(model, paths, rule) for model, (paths, rule) in found.items()]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _children(annotation: Any, key: str) -> list[tuple[str, str | None, type[BaseModel]]]:
    """The models a field holds: (path suffix, pattern of a dict key, model)."""
    annotation = _bare(annotation)
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", None, annotation)]
    if origin in (types.UnionType, typing.Union):
        return [child for member in typing.get_args(annotation) for child in _children(member, key)]
    if origin is list:
        (item,) = typing.get_args(annotation)
        return [("[N]", rule, model) for _, rule, model in _children(item, key)]
    if origin is dict:
        name, value = typing.get_args(annotation)
        models = _children(value, key)
        if models and key not in PLACEHOLDERS:
            raise KeyError(f"no placeholder for the names under {key!r}: add it to PLACEHOLDERS")
        return [(f".{PLACEHOLDERS[key]}", _pattern(name), model) for _, _, model in models]
    return []


def _bare(annotation: Any) -> Any:
    """``Annotated[X, ...]`` -> ``X``."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _pattern(annotation: Any) -> str | None:
    if typing.get_origin(annotation) is not typing.Annotated:
        return None
    for extra in typing.get_args(annotation)[1:]:
        for item in getattr(extra, "metadata", [extra]):
            if getattr(item, "pattern", None):
                return str(item.pattern)
    return None


# -- one section ----------------------------------------------------------------------------


def _section(model: type[BaseModel], paths: list[str], key_rule: str | None, example: str) -> str:
    section = SECTIONS[model]
    examples = _examples(example, section.examples)
    lines = [f"{section.before}\n\n{examples}\n"] if section.before else []
    lines.append(f"{'#' * section.level} {section.title} {{#{section.anchor}}}\n")
    lines.append(_markdown(model.__doc__ or ""))
    if section.intro:
        lines.append("\n" + section.intro)
    key_paths = ", ".join(f"`{_join(path, 'KEY')}`" for path in paths)
    lines.append(f"\nKey path{'s' if len(paths) > 1 else ''}: {key_paths}\n")
    if key_rule:
        placeholder = paths[0].rsplit(".", 1)[-1]
        lines.append(f"`{placeholder}` matches `{key_rule}`.\n")
    lines.append("| key | type | required | default | meaning |\n|---|---|---|---|---|")
    lines += [_row(model, name, field) for name, field in model.model_fields.items()]
    if examples and not section.before:
        lines.append("\n" + examples)
    if section.notes:
        lines.append("\n" + section.notes)
    return "\n".join(lines) + "\n"


def _examples(example: str, wanted: tuple[tuple[str, str], ...]) -> str:
    if not wanted:
        return ""
    blocks = "\n\n".join(_block(example, header, text) for header, text in wanted)
    return f"From `{EXAMPLE_NAME}`:\n\n```toml\n{blocks}\n```"


def _row(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    if not field.description:
        raise ValueError(f"{model.__name__}.{name} has no Field(description=...)")
    required = "yes" if field.is_required() else "no"
    cells = [f"`{field.alias or name}`", _type(field.annotation, field.metadata), required]
    cells += [_default(field), _markdown(field.description)]
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a bare | would end the Markdown table cell


def _type(annotation: Any, metadata: list[Any]) -> str:
    text = _type_name(annotation)
    rules = [rule for item in metadata if (rule := _rule(item, text))]
    return text + (f" ({', '.join(rules)})" if rules else "")


def _rule(item: Any, text: str) -> str:
    counted = "characters" if text == "string" else "elements"
    if isinstance(item, MinLen):
        return "not empty" if item.min_length == 1 else f"at least {item.min_length} {counted}"
    if isinstance(item, MaxLen):
        return f"at most {item.max_length} {counted}"
    if isinstance(item, Gt):
        return f"> {item.gt}"
    if isinstance(item, Ge):
        return f">= {item.ge}"
    if getattr(item, "pattern", None):
        return f"matching `{item.pattern}`"
    raise ValueError(f"no text for the constraint {item!r}")


SCALARS = {str: "string", int: "integer", bool: "boolean", Decimal: "number"}


def _type_name(annotation: Any) -> str:
    annotation = _bare(annotation)
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        members = [_bare(member) for member in arguments if member is not type(None)]
        if len(members) == 1:
            return _type_name(members[0])
        # Tables of several kinds (the transforms): a link to each kind's section.
        links = [f"[{SECTIONS[m].title}](#{SECTIONS[m].anchor})" for m in members]
        return "table: " + ", ".join(links)
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{_toml(value)}`" for value in arguments)
    if origin is list:
        return f"array of {_plural(_type_name(arguments[0]))}"
    if origin is dict:
        return f"table of {_plural(_type_name(arguments[1]))}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[table](#{SECTIONS[annotation].anchor})"
    if annotation in SCALARS:
        return SCALARS[annotation]
    raise ValueError(f"no name for the type {annotation!r}")


def _plural(name: str) -> str:
    if name.startswith("table: "):  # a union of models: the transforms
        return "tables (" + name.removeprefix("table: ") + ")"
    return re.sub(r"^(\[?)(table|string|number|integer|boolean)\b", r"\1\2s", name)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return ""
    value = field.get_default(call_default_factory=True)
    return "" if value is None else f"`{_toml(value)}`"


def _toml(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(exclude_defaults=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{key} = {_toml(item)}" for key, item in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return str(value)


# -- examples -------------------------------------------------------------------------------


def _block(example: str, header: str, contains: str) -> str:
    """The example file's block under ``header`` (with the comments just above it) whose text
    contains ``contains``; header "": the keys before the first header."""
    lines = example.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("[")]
    if not header:
        keys = [line for line in lines[: starts[0]] if line and not line.startswith("#")]
        return "\n".join(keys)
    for position, start in enumerate(starts):
        end = starts[position + 1] if position + 1 < len(starts) else len(lines)
        block = lines[start:end]
        if block[0] != header or contains not in "\n".join(block):
            continue
        while block and (not block[-1].strip() or block[-1].startswith("#")):
            block.pop()
        while start > 0 and lines[start - 1].startswith("#") and "# --" not in lines[start - 1]:
            start -= 1
            block.insert(0, lines[start])
        return "\n".join(block)
    raise ValueError(f"{EXAMPLE_NAME} has no {header} block containing {contains!r}")


def main(argv: list[str]) -> int:
    if "--check" in argv:
        if not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != render():
            print(f"{PAGE} is stale: run `python scripts/project_file_page.py`", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
