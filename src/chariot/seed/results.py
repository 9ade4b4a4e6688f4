"""What a seed returns: plain data the CLI renders as a table or JSON."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SeedResult(BaseModel):
    dataset: str = Field(description="'movielens' or 'synthetic'")
    database: str = Field(description="the source database, password redacted")
    method: str = Field(description="'load-data' (LOAD DATA LOCAL INFILE) or 'insert' (fallback)")
    rows: dict[str, int] = Field(description="rows now in each source table")
    table_seconds: dict[str, float] = Field(description="load time per table")
    seconds: float = Field(description="wall time of the whole seed")
    source_dir: str | None = Field(None, description="where the MovieLens CSVs were read from")
    downloaded: bool = Field(False, description="whether the CSVs were downloaded by this run")
    seed: int | None = Field(None, description="random seed of a synthetic data set")

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


class AppendResult(BaseModel):
    """Synthetic ratings added to an existing source (for incremental-sync scenarios)."""

    ratings: int
    first_user_id: int
    last_user_id: int
    seconds: float


class PostgresRatingsResult(BaseModel):
    """Synthetic movies and ratings written straight into PostgreSQL sink tables."""

    schema_name: str
    movies: int
    ratings: int
    seconds: float
