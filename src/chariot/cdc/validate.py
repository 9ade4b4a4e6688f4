"""Placeholder until the validation work lands (reject rules for decoded rows)."""

from __future__ import annotations

from typing import Any

from chariot.streams import Stream


def reject_reason(stream: Stream, row: dict[str, Any]) -> str | None:
    return None
