"""Finding sources, sinks and Python transforms by name, through the ``chariot.sources`` /
``chariot.sinks`` / ``chariot.transforms`` entry points (pyproject.toml). A package that
declares one of these entry points adds a source, a sink or a transform function without
touching Chariot.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

from chariot.errors import PluginError

if TYPE_CHECKING:
    from chariot.sinks.base import Sink
    from chariot.sources.base import Source

SOURCE_GROUP = "chariot.sources"
SINK_GROUP = "chariot.sinks"
TRANSFORM_GROUP = "chariot.transforms"


def installed(group: str) -> dict[str, EntryPoint]:
    """Installed plugins of one group, by name."""
    return {entry.name: entry for entry in _entry_points(tuple(sys.path)).select(group=group)}


@cache
def _entry_points(path: tuple[str, ...]) -> Any:
    """Every group's entry points, read once per ``sys.path``: a read opens every installed
    distribution's metadata (5-10 ms) whatever the group, and a sync looks up its source
    and its sinks (two groups, one read). A path entry added later (a plugin put on the
    path) reads them afresh. ``select`` (not iteration) works on every supported Python:
    3.11 returns its deprecated dict of groups here."""
    return entry_points()


def sink_names() -> list[str]:
    return sorted(installed(SINK_GROUP))


def source_names() -> list[str]:
    return sorted(installed(SOURCE_GROUP))


def transform_names() -> list[str]:
    return sorted(installed(TRANSFORM_GROUP))


@cache  # a function's module is imported once; a failed load is not cached
def load_transform(name: str) -> Callable[[Any], Any]:
    """The function registered as ``name`` in ``chariot.transforms``."""
    loaded = _loaded(TRANSFORM_GROUP, "Python transform", name)
    if not callable(loaded):
        value = installed(TRANSFORM_GROUP)[name].value
        raise PluginError(f"Python transform {name!r} ({value}) is not callable")
    return loaded  # type: ignore[no-any-return]


def load_sink(name: str) -> type[Sink]:
    from chariot.sinks.base import Sink

    return _load(SINK_GROUP, "sink", name, Sink)  # type: ignore[type-abstract]


def load_source(name: str) -> type[Source]:
    from chariot.sources.base import Source

    return _load(SOURCE_GROUP, "source", name, Source)  # type: ignore[type-abstract]


def _load(group: str, kind: str, name: str, base: type) -> type:
    loaded = _loaded(group, kind, name)
    if not (isinstance(loaded, type) and issubclass(loaded, base)):
        value = installed(group)[name].value
        raise PluginError(f"{kind} {name!r} ({value}) is not a {base.__name__} class")
    return loaded


def _loaded(group: str, kind: str, name: str) -> Any:
    plugins = installed(group)
    if name not in plugins:
        known = ", ".join(sorted(plugins)) or "none"
        raise PluginError(
            f"unknown {kind} {name!r}; installed {kind}s: {known}",
            hint=f"plugins register under the {group!r} entry point group",
        )
    try:
        loaded = plugins[name].load()
    except Exception as error:  # an ImportError or any error raised while importing it
        raise PluginError(
            f"{kind} {name!r} ({plugins[name].value}) could not be loaded: {error}",
            hint="is the package providing it installed completely?",
        ) from error
    return loaded
