"""`chariot seed movielens` and `chariot seed synthetic`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from chariot.cli.common import (
    JsonOption,
    console,
    finish,
    reported_errors,
    settings_from,
)
from chariot.cli.progress import progress_display
from chariot.exit_codes import ExitCode
from chariot.seed.loading import LoadMethod
from chariot.seed.results import SeedResult

seed_app = typer.Typer(
    name="seed",
    help="Load demo data into the MySQL source (replaces its movies, links, ratings and tags).",
    no_args_is_help=True,
)

MethodOption = Annotated[
    LoadMethod,
    typer.Option(
        "--method",
        help="'load-data' (LOAD DATA LOCAL INFILE), 'insert' (multi-row INSERTs), or 'auto': "
        "load-data, falling back to insert when the server has local_infile OFF.",
    ),
]


@seed_app.command("movielens")
def movielens(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="An extracted MovieLens directory (movies/links/ratings/tags .csv). "
            "Default: download ml-latest-small once into ~/.cache/chariot.",
        ),
    ] = None,
    method: MethodOption = LoadMethod.auto,
    as_json: JsonOption = False,
) -> None:
    """Load the MovieLens CSVs into the MySQL source, replacing its four tables atomically."""
    from chariot.seed.movielens import seed_movielens

    with reported_errors(ctx, as_json=as_json):
        settings = settings_from(ctx)
        with progress_display(ctx, as_json=as_json) as progress:
            result = seed_movielens(settings.mysql, directory, method=method, progress=progress)
    show(result, as_json=as_json)


@seed_app.command("synthetic")
def synthetic(
    ctx: typer.Context,
    ratings: Annotated[int, typer.Option("--ratings", min=0, help="How many ratings to generate.")],
    users: Annotated[
        int | None,
        typer.Option("--users", min=1, help="Users (default: ratings / 165, as in MovieLens)."),
    ] = None,
    movies: Annotated[
        int | None,
        typer.Option("--movies", min=1, help="Movies (default: ratings / 10, 1,000 to 60,000)."),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Random seed; same seed, same data.")
    ] = 0,
    method: MethodOption = LoadMethod.auto,
    as_json: JsonOption = False,
) -> None:
    """Generate MovieLens-shaped data and load it into the MySQL source, replacing its tables."""
    from chariot.seed.synthetic import seed_synthetic

    with reported_errors(ctx, as_json=as_json):
        settings = settings_from(ctx)
        with progress_display(ctx, as_json=as_json) as progress:
            result = seed_synthetic(
                settings.mysql,
                ratings,
                users=users,
                movies=movies,
                seed=seed,
                method=method,
                progress=progress,
            )
    show(result, as_json=as_json)


def show(result: SeedResult, *, as_json: bool) -> None:
    finish(result, exit_code=ExitCode.OK, as_json=as_json, render=lambda: _render(result))


def _render(result: SeedResult) -> None:
    heading = f"Seeded {result.dataset} into {result.database}"
    console.print(heading, highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("seconds", justify="right")
    for name, rows in result.rows.items():
        table.add_row(name, f"{rows:,}", f"{result.table_seconds.get(name, 0.0):.2f}")
    console.print(table)
    bulk = result.method == "load-data"
    how = "LOAD DATA LOCAL INFILE" if bulk else "multi-row INSERT (fallback)"
    origin = f" from {result.source_dir}" if result.source_dir else f" (seed {result.seed})"
    fetched = ", downloaded" if result.downloaded else ""
    console.print(
        f"{result.total_rows:,} rows{origin}{fetched} via {how} in {result.seconds:.1f} s",
        highlight=False,
        soft_wrap=True,
    )
    # Both datasets have the MovieLens tables: its example project describes them.
    console.print(
        "next: chariot init --example movielens (once), then chariot run",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(seed_app, name="seed")
