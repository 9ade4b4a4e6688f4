"""The one error hierarchy of the library.

The CLI turns any ``ChariotError`` into one line (``str(error)``), an optional hint and
the class's ``exit_code``; anything else is a bug and shows a traceback with ``--debug``.
"""

from __future__ import annotations

from chariot.exit_codes import ExitCode


class ChariotError(Exception):
    """Base of every error the library raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(ChariotError):
    """A setting is missing or invalid."""

    exit_code = ExitCode.USAGE


class ConnectionFailed(ChariotError):
    """A server could not be reached or refused our credentials."""

    exit_code = ExitCode.CONNECTION


class SourceReadError(ChariotError):
    """Reading the source failed. Never mistaken for 'end of data'."""

    exit_code = ExitCode.SOURCE_READ


class SinkWriteError(ChariotError):
    """One or more sinks failed to write; the others finished their work."""

    exit_code = ExitCode.SINK_WRITE


class AggregationError(ChariotError):
    """A partition failed beyond its retry limit, or the run could not proceed."""

    exit_code = ExitCode.AGGREGATION


class AuditError(ChariotError):
    """The audit itself could not run (not: differences were found)."""

    exit_code = ExitCode.AUDIT_FAILED


class DataError(ChariotError):
    """Input data (CSV files, downloads) is missing or malformed."""

    exit_code = ExitCode.DATA


class PluginError(ChariotError):
    """A source or sink plugin could not be found or loaded."""

    exit_code = ExitCode.USAGE


class Busy(ChariotError):
    """Another chariot command holds the writer lease of a table this one needs."""

    exit_code = ExitCode.BUSY
