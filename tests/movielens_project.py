"""The MovieLens tables as the example project declares them (``examples/movielens``): the
streams a sync of that project uses, transforms and all, for tests that drive a sink or
the reader directly."""

from __future__ import annotations

from pathlib import Path

from chariot.project import load_project
from chariot.project.streams import project_streams
from chariot.streams import Stream

MOVIELENS_PROJECT = Path(__file__).resolve().parents[1] / "examples/movielens/chariot.toml"

MOVIELENS_STREAMS: tuple[Stream, ...] = project_streams(load_project(MOVIELENS_PROJECT))
STREAMS_BY_NAME = {stream.name: stream for stream in MOVIELENS_STREAMS}
MOVIES = STREAMS_BY_NAME["movies"]
LINKS = STREAMS_BY_NAME["links"]
RATINGS = STREAMS_BY_NAME["ratings"]
TAGS = STREAMS_BY_NAME["tags"]
