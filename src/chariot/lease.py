"""Who is writing: the identity a writer lease carries, and whether its holder is gone.

A lease holder is named ``host:pid`` (plus what it is doing), so that a later command on the
same host can tell a holder that was killed (kill -9 leaves its lease behind until it
expires) from one that is alive, and take over at once instead of waiting for the expiry.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

# Seconds between two attempts while ``--wait`` is waiting for a lease.
RETRY_SECONDS = 0.5
# How long a dead local holder's lock may linger until its server notices the lost client.
DEAD_HOLDER_GRACE_SECONDS = 15.0


def worker_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class LeaseOwner:
    """This process as a lease holder; ``token`` tells two runs of one process apart."""

    purpose: str = "sync"
    holder: str = field(default_factory=worker_id)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def describe(self) -> str:
        host, _, pid = self.holder.rpartition(":")
        return f"chariot {self.purpose} (pid {pid} on {host})"

    def doing(self, purpose: str) -> LeaseOwner:
        return LeaseOwner(purpose=purpose, holder=self.holder, token=self.token)


def holder_of(described: str | None) -> str | None:
    """The ``host:pid`` inside a ``describe()`` text, for ``is_dead_local_process``."""
    if not described or " (pid " not in described or " on " not in described:
        return None
    inside = described.rsplit(" (pid ", 1)[1].rstrip(")")
    pid, _, host = inside.partition(" on ")
    return f"{host}:{pid}" if pid.isdigit() else None


def is_dead_local_process(holder: str | None, host: str | None = None) -> bool:
    """Whether ``holder`` (``host:pid``) ran on this host and its process is gone."""
    if not holder or ":" not in holder:
        return False
    holder_host, _, pid_text = holder.rpartition(":")
    if holder_host != (host or socket.gethostname()) or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return _is_zombie(int(pid_text))


def _is_zombie(pid: int) -> bool:
    """A killed child not yet reaped by its parent still answers ``kill 0``."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return False


def keep_trying(attempt: Callable[[], T | None], *, wait_seconds: float) -> T | None:
    """Call ``attempt`` until it returns something, for at most ``wait_seconds``."""
    deadline = time.monotonic() + max(wait_seconds, 0.0)
    while True:
        outcome = attempt()
        if outcome is not None or time.monotonic() >= deadline:
            return outcome
        time.sleep(min(RETRY_SECONDS, max(deadline - time.monotonic(), 0.0)))
