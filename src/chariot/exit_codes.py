"""Every exit status of the ``chariot`` command, in one table.

The CLI is the only user: library code raises ``ChariotError`` subclasses, each naming its
code here; the documentation's exit-code table is rendered from ``ExitCode.table()``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    DIFFERENCES = 1
    USAGE = 2
    CONNECTION = 3
    SOURCE_READ = 4
    SINK_WRITE = 5
    AGGREGATION = 6
    AUDIT_FAILED = 7
    DATA = 8
    BUSY = 9
    INTERNAL = 70
    INTERRUPTED = 130

    @property
    def kind(self) -> str:
        """The stable name used in ``--json`` errors (``"sink_write"``)."""
        return self.name.lower()

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]

    @classmethod
    def table(cls) -> list[tuple[int, str, str]]:
        """(code, kind, meaning) for every code, for the docs and ``--help`` texts."""
        return [(code.value, code.kind, code.meaning) for code in cls]


_MEANINGS = {
    ExitCode.OK: "Success: every table, sink and stage finished and agrees.",
    ExitCode.DIFFERENCES: (
        "`audit` (or the audit stage of `run`) found differences between the source and a sink "
        "(after `--repair`: some remain)."
    ),
    ExitCode.USAGE: (
        "Invalid command line, setting, `.env` file or plugin name; nothing was changed."
    ),
    ExitCode.CONNECTION: "A server could not be reached or refused the credentials.",
    ExitCode.SOURCE_READ: "Reading the source failed; each sink keeps what it committed.",
    ExitCode.SINK_WRITE: (
        "One or more sinks failed to write; the other sinks finished, and a re-run resumes "
        "from each sink's checkpoint."
    ),
    ExitCode.AGGREGATION: (
        "Partitions failed beyond their retry limit, or the summaries' graph write failed."
    ),
    ExitCode.AUDIT_FAILED: "The audit itself could not run (not: differences were found).",
    ExitCode.DATA: (
        "Input data is missing or malformed (CSV files, a download), or the source no longer "
        "matches what a sink holds (replaced or emptied): the message names the command that "
        "recovers."
    ),
    ExitCode.BUSY: (
        "Another chariot command holds the writer lease of a table it needs, or a table it "
        "reads is being loaded: nothing was changed (`aggregate`: unless its PostgreSQL "
        "summaries were already promoted; a re-run finishes the graph write). Wait, or pass "
        "`--wait SECONDS`."
    ),
    ExitCode.INTERNAL: "A bug in chariot: please report it with the output of `--debug`.",
    ExitCode.INTERRUPTED: "Interrupted (Ctrl-C or SIGTERM); re-run the same command to resume.",
}
