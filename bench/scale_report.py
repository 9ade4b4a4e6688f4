"""The scale benchmark's results as Markdown: the cases table, the machine, the #12 targets.

Pure functions of the results file ``bench/scale_bench.py`` writes (``--json``), so the
Performance page can be regenerated from it without re-running anything:

    python bench/scale_report.py bench/results/scale-1m.json            # print the Markdown
    python bench/scale_report.py bench/results/scale-1m.json --docs docs/performance.md

``--docs`` replaces the block between ``<!-- scale:<scenario> start -->`` and
``<!-- scale:<scenario> end -->`` in the page (the rest of the page is left as written).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1024


@dataclass(frozen=True)
class Target:
    """One target of issue #12, judged on one measured figure."""

    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def rate(rows: int | None, seconds: float | None) -> float | None:
    return ratio(float(rows) if rows is not None else None, seconds)


def mib(kib: int | None) -> str:
    return "-" if not kib else f"{kib / MIB:,.0f} MiB"


def number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}×"


def _rss(case: Mapping[str, Any]) -> str:
    """The tree's exact peak, then the main process's and the largest worker's samples."""
    tree = case.get("peak_rss_kib")
    if not tree:
        return "-"
    text = mib(tree)
    workers = case.get("worker_rss_kib") or []
    main = case.get("main_rss_kib")
    if workers:
        text += f" (main {mib(main)}, {len(workers)} workers ≤ {mib(max(workers))})"
    return text


def _cpu(case: Mapping[str, Any]) -> str:
    """CPU seconds of the command's own processes, and their share of its wall time: the
    rest is waiting (for the servers, or for a core on a busy machine)."""
    cpu, seconds = case.get("cpu_seconds"), case.get("seconds")
    if not cpu or not seconds:
        return "-"
    return f"{cpu:.1f} s ({cpu / seconds:.0%})"


def cases_table(cases: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "| case | rows | seconds | rows/s | reference | ratio | peak RSS | CPU | load |",
        "|---|---:|---:|---:|---|---:|---|---:|---:|",
    ]
    for case in cases:
        seconds = case.get("seconds")
        own = case.get("reported_seconds")
        shown = number(seconds, 2)
        if own is not None and seconds is not None and abs(own - seconds) >= 0.01:
            shown += f" ({own:.2f})"
        lines.append(
            "| "
            + " | ".join(
                [
                    case["label"],
                    number(case.get("rows")),
                    shown,
                    number(case.get("rows_per_second")),
                    case.get("reference") or "",
                    case.get("ratio_text") or times(case.get("ratio")),
                    _rss(case),
                    _cpu(case),
                    number(case.get("load1"), 1),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def _by_id(results: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {case["id"]: case for case in results["cases"]}


def targets(results: Mapping[str, Any]) -> list[Target]:
    """Issue #12's targets against this run (they are set at 25M ratings: a smaller run
    says how far off they are, not whether they hold at 25M)."""
    found = _by_id(results)

    def get(case: str, key: str) -> Any:
        return found.get(case, {}).get(key)

    out: list[Target] = []
    pg = get("load_postgres", "ratio")
    out.append(
        Target(
            "MySQL → PostgreSQL rows/s",
            "≥ 2× pgloader",
            "-" if pg is None else f"{pg:.2f}× pgloader",
            None if pg is None else pg >= 2,
        )
    )
    rels = get("load_neo4j", "ratings_per_second")
    out.append(
        Target(
            "Neo4j initial load",
            "≥ 60,000 relationships/s",
            "-" if rels is None else f"{rels:,.0f} relationships/s",
            None if rels is None else rels >= 60_000,
        )
    )
    change = get("cdc_neo4j", "changes_per_second")
    out.append(
        Target(
            "Neo4j change capture (log phase)",
            "≥ 35,000 changes/s",
            "-" if change is None else f"{change:,.0f} changes/s",
            None if change is None else change >= 35_000,
        )
    )
    both = get("load_both", "ratio")
    out.append(
        Target(
            "both sinks together",
            "≤ 1.1× the slower sink alone",
            "-" if both is None else f"{both:.2f}×",
            None if both is None else both <= 1.1,
        )
    )
    # The whole command, start to exit, as a user waits for it (the median of several).
    command = get("no_change", "seconds")
    spread = (get("no_change", "seconds_min"), get("no_change", "seconds_max"))
    out.append(
        Target(
            "no-change sync, every table",
            "≤ 1 s (the whole command)",
            "-"
            if command is None
            else f"{command:.2f} s"
            + (f" ({spread[0]:.2f}–{spread[1]:.2f})" if None not in spread else "")
            + f", inside {get('no_change', 'reported_seconds') or 0:.2f} s",
            None if command is None else command <= 1,
        )
    )
    for case, name, goal, limit in (
        ("aggregate_2", "aggregate, 2 workers", "≤ 1× plain SQL", 1.0),
        ("aggregate_dask", "aggregate, Dask local cluster", "≤ 1.5× plain SQL", 1.5),
    ):
        value = get(case, "ratio")
        out.append(
            Target(
                name,
                goal,
                "-" if value is None else f"{value:.2f}× plain SQL",
                None if value is None else value <= limit,
            )
        )
    for case, name, goal, limit in (
        ("audit_postgres", "audit source ⇄ PostgreSQL, clean", "≤ 60 s", 60.0),
        ("audit_neo4j", "audit source ⇄ Neo4j, clean", "≤ 120 s", 120.0),
    ):
        value = get(case, "seconds")
        out.append(
            Target(
                name,
                goal,
                "-" if value is None else f"{value:.1f} s",
                None if value is None else value <= limit,
            )
        )
    peaks = [
        c["peak_rss_kib"] for c in results["cases"] if c.get("peak_rss_kib") and c.get("chariot")
    ]
    worst = max(peaks, default=None)
    out.append(
        Target(
            "peak RSS of chariot and each worker",
            "≤ 512 MiB",
            "-" if worst is None else f"largest {mib(worst)}",
            None if worst is None else worst <= 512 * MIB,
        )
    )
    return out


def targets_table(results: Mapping[str, Any]) -> str:
    lines = ["| target | goal (at 25M ratings) | measured here | |", "|---|---|---|---|"]
    for target in targets(results):
        verdict = "not measured" if target.met is None else ("met" if target.met else "**missed**")
        lines.append(f"| {target.name} | {target.goal} | {target.measured} | {verdict} |")
    return "\n".join(lines)


def machine_lines(results: Mapping[str, Any]) -> str:
    machine = results["machine"]
    load = results["load_average"]
    rows = results["rows"]
    return "\n".join(
        [
            f"- **Date**: {results['date']} (chariot {results.get('git', '?')})",
            f"- **Command**: `{results['command']}`",
            f"- **Data**: {results['ratings']:,} synthetic ratings, "
            + ", ".join(f"{name} {count:,}" for name, count in rows.items())
            + f" ({sum(rows.values()):,} rows in all)",
            f"- **Machine**: {machine['cores']} cores ({machine.get('cpu', '?')}), "
            f"{machine['ram_gib']:.0f} GiB RAM, {machine.get('kernel', '?')}",
            f"- **Servers** (same machine): {machine['mysql']}; {machine['postgres']}; "
            f"{machine['neo4j']}; reference {machine['pgloader']}",
            "- **Load average** (1, 5, 15 min): start "
            + ", ".join(f"{v:.2f}" for v in load["start"])
            + "; end "
            + ", ".join(f"{v:.2f}" for v in load["end"]),
        ]
    )


def render(results: Mapping[str, Any]) -> str:
    return "\n\n".join(
        [
            machine_lines(results),
            cases_table(results["cases"]),
            targets_table(results),
        ]
    )


def replace_block(page: str, scenario: str, body: str) -> str:
    """The page with the scenario's generated block replaced (appended when absent)."""
    start, end = f"<!-- scale:{scenario} start -->", f"<!-- scale:{scenario} end -->"
    block = f"{start}\n{body}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(page):
        return pattern.sub(lambda _: block, page, count=1)
    return page.rstrip("\n") + "\n\n" + block + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--docs", type=Path, help="replace this scenario's block in this page")
    options = parser.parse_args(argv)
    results = json.loads(options.results.read_text())
    body = render(results)
    if options.docs:
        page = options.docs.read_text() if options.docs.exists() else ""
        options.docs.write_text(replace_block(page, results["scenario"], body))
    else:
        sys.stdout.write(body + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
