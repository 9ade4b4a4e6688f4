"""Running one command of a benchmark as a child process: wall time and peak memory.

Peak RSS is measured two ways, because each alone misses something:

* **exact, whole tree**: the command runs under a small launcher (``LAUNCHER``: Python
  without site, ~10 MiB) that forks it, waits for it and reports
  ``getrusage(RUSAGE_CHILDREN).ru_maxrss``: the kernel's high-water mark of the largest
  process of the tree (Linux folds each reaped child's maximum into its parent's, so the
  workers the command waited for count). Nothing is sampled, so no short peak is missed;
  but it is one figure for the command and its workers together, and it is what the
  "<= 512 MiB for every process" target is judged on: when the largest process of the
  tree stays under the limit, every process does. Why the launcher: a child's
  ``ru_maxrss`` starts at the RSS of the process it was forked from (Linux records the
  old memory's high-water mark at exec), so forking the command straight from the bench
  (hundreds of MiB once it has seeded with pandas) would report the bench's size; forked
  from the launcher it over-reports by the launcher's ~10 MiB at most.
* **per process, sampled**: while the command runs, ``/proc/<pid>/status`` ``VmHWM`` (the
  same kernel high-water mark, per process, and fresh at exec) is read for the command
  and each descendant every ``interval`` seconds, so the main process and each worker get
  a figure of their own. A process that grows in its last ``interval`` before exiting is
  under-reported; the exact tree figure bounds that error from above.

Linux only (``/proc``, ``wait4``); the benchmarks run on the project's Linux machines.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
# argv: <file> <command...>: writes "ru_maxrss utime stime" of the command's tree to <file>,
# exits with the command's status (128+N: signal N).
LAUNCHER = """
import os, resource, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status = os.waitpid(pid, 0)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss} {usage.ru_utime} {usage.ru_stime}")
code = os.waitstatus_to_exitcode(status)
sys.exit(128 - code if code < 0 else code)
"""


@dataclass
class ProcessPeak:
    pid: int
    command: str
    peak_kib: int


@dataclass
class Measured:
    """One finished command: exit status, output, wall time and memory."""

    argv: list[str]
    returncode: int
    seconds: float
    stdout: str
    stderr: str
    tree_peak_kib: int  # the largest process of the tree, exact (launcher's rusage)
    cpu_seconds: float = 0.0  # user + system CPU of the whole tree: the command's own work
    processes: dict[int, ProcessPeak] = field(default_factory=dict)  # sampled VmHWM

    @property
    def main_peak_kib(self) -> int:
        """The command's own process (sampled)."""
        for peak in self.processes.values():
            if peak.command == "<main>":
                return peak.peak_kib
        return 0

    @property
    def worker_peaks_kib(self) -> list[int]:
        """Each descendant's peak (sampled), largest first."""
        return sorted(
            (p.peak_kib for p in self.processes.values() if p.command != "<main>"), reverse=True
        )


def parse_usage(text: str) -> tuple[int, float]:
    """The launcher's "ru_maxrss utime stime": (peak KiB, CPU seconds); zeros when the
    launcher could not write it (killed)."""
    parts = text.split()
    try:
        return int(parts[0]), float(parts[1]) + float(parts[2])
    except (IndexError, ValueError):
        return 0, 0.0


def parse_vmhwm(status: str) -> int | None:
    """``VmHWM`` of a ``/proc/<pid>/status`` text, in KiB (None for a zombie or kernel
    thread, which have no memory lines)."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            parts = line.split()
            return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
    return None


def parse_ppid(stat: str) -> int | None:
    """The parent pid of a ``/proc/<pid>/stat`` line. The command name (field 2) is in
    parentheses and may itself hold spaces and parentheses: fields are counted from the
    last ``)``."""
    closing = stat.rfind(")")
    if closing < 0:
        return None
    fields = stat[closing + 1 :].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].lstrip("-").isdigit() else None


def descendants(root: int, parents: Mapping[int, int]) -> set[int]:
    """Every pid below ``root`` in a pid -> parent pid mapping."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:  # gone between listing and reading
        return None


def _parents() -> dict[int, int]:
    parents = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _read(entry / "stat")
            parent = parse_ppid(stat) if stat else None
            if parent is not None:
                parents[int(entry.name)] = parent
    return parents


def _command(pid: int) -> str:
    text = _read(PROC / str(pid) / "cmdline") or ""
    return " ".join(text.split("\0")).strip()[:200]


class TreeSampler:
    """Samples ``VmHWM`` of ``root``'s descendants (and of ``root`` itself unless it is a
    launcher) every ``interval`` s in a thread. The main process is ``root``, or with
    ``launcher`` the launcher's direct child."""

    def __init__(self, root: int, interval: float = 0.2, *, launcher: bool = False) -> None:
        self.root = root
        self.launcher = launcher
        self.interval = interval
        self.peaks: dict[int, ProcessPeak] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        parents = _parents()
        tree = descendants(self.root, parents) | (set() if self.launcher else {self.root})
        main = self.root
        if self.launcher:
            main = next((pid for pid in tree if parents.get(pid) == self.root), -1)
        for pid in tree:
            status = _read(PROC / str(pid) / "status")
            peak = parse_vmhwm(status) if status else None
            if peak is None:
                continue
            known = self.peaks.get(pid)
            if known is None:
                command = "<main>" if pid == main else _command(pid)
                self.peaks[pid] = ProcessPeak(pid, command, peak)
            else:
                known.peak_kib = max(known.peak_kib, peak)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    interval: float = 0.2,
) -> Measured:
    """Run ``argv`` to its end under the launcher; never raises on a non-zero exit (the
    caller judges)."""
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.NamedTemporaryFile("r", prefix="chariot-rusage-") as usage,
    ):
        launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, usage.name]
        started = time.perf_counter()
        process = subprocess.Popen(
            [*launcher, *argv], stdout=out, stderr=err, env=dict(env) if env else None, cwd=cwd
        )
        with TreeSampler(process.pid, interval, launcher=True) as sampler:
            returncode = process.wait()
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        peak, cpu = parse_usage(usage.read())
        return Measured(
            argv=list(argv),
            returncode=returncode,
            seconds=seconds,
            stdout=out.read(),
            stderr=err.read(),
            tree_peak_kib=peak,
            cpu_seconds=cpu,
            processes=sampler.peaks,
        )


def largest(values: Iterable[int]) -> int:
    return max(values, default=0)
