"""Placeholder until the foreign-key work lands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chariot.config import Settings
from chariot.streams import Stream


def foreign_key_actions(settings: Settings, streams: Sequence[Stream]) -> Any:
    return None
