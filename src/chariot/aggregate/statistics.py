"""What the aggregation computes: the summary columns, their exact definitions and their
names as Neo4j Movie properties. Shared by the workers, the promotion, the graph write-back
and the independent verification, so the four can never disagree on a name.

Definitions (``r`` = the ratings of one movie / one user; ``n`` = their count):

* ``rating_count``   n
* ``rating_mean``    sum(r) / n (arithmetic mean)
* ``rating_stddev``  SAMPLE standard deviation sqrt(sum((r - mean)^2) / (n - 1)), the same as
  PostgreSQL's ``stddev_samp``; NULL when n = 1 (the property is absent in Neo4j)
* ``rating_min`` / ``rating_max``  smallest / largest rating
* ``rating_median``  the middle rating of the sorted ratings; for an even n the mean of the
  two middle ratings (= ``percentile_cont(0.5)``)
* ``rating_histogram``  ten counts, for ratings equal to 0.5, 1.0, 1.5, ... 5.0 in that
  order; a rating off that grid (the column allows e.g. 3.3) counts in every other
  statistic but in no bin
* ``first_rated_at`` / ``last_rated_at``  min / max ``timestamp`` (unix seconds)
* ``bayesian_average``  (C * m + sum(r)) / (m + n) with m = ``CHARIOT_RUN__BAYES_PRIOR_WEIGHT``
  and C = ``CHARIOT_RUN__BAYES_PRIOR_MEAN``: the mean damped towards C as if every movie
  had m extra ratings of C

Per genre (genres come from ``movies.genres``; a genre listed twice for one movie counts once;
ratings of movies absent from ``movies`` belong to no genre, movies with no genres to none):

* ``movie_count``   movies with the genre that have at least one rating
* ``rating_count``  ratings of those movies
* ``rating_mean``   mean of those ratings
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HALF_STARS_TENTHS: tuple[int, ...] = tuple(range(5, 51, 5))  # 0.5, 1.0, ..., 5.0 in tenths
HISTOGRAM_COLUMNS: tuple[str, ...] = tuple(f"h{value:02d}" for value in HALF_STARS_TENTHS)

Kind = Literal["int", "float", "array", "text"]


@dataclass(frozen=True)
class SummaryColumn:
    name: str
    kind: Kind
    neo4j: str | None = None  # the Movie property name, for movie columns


MOVIE_COLUMNS: tuple[SummaryColumn, ...] = (
    SummaryColumn("rating_count", "int", "ratingCount"),
    SummaryColumn("rating_mean", "float", "ratingMean"),
    SummaryColumn("rating_stddev", "float", "ratingStddev"),
    SummaryColumn("rating_min", "float", "ratingMin"),
    SummaryColumn("rating_max", "float", "ratingMax"),
    SummaryColumn("rating_median", "float", "ratingMedian"),
    SummaryColumn("rating_histogram", "array", "ratingHistogram"),
    SummaryColumn("first_rated_at", "int", "firstRatedAt"),
    SummaryColumn("last_rated_at", "int", "lastRatedAt"),
    SummaryColumn("bayesian_average", "float", "bayesianAverage"),
)

USER_COLUMNS: tuple[SummaryColumn, ...] = (
    SummaryColumn("rating_count", "int"),
    SummaryColumn("rating_mean", "float"),
    SummaryColumn("rating_stddev", "float"),
    SummaryColumn("first_rated_at", "int"),
    SummaryColumn("last_rated_at", "int"),
)

GENRE_COLUMNS: tuple[SummaryColumn, ...] = (
    SummaryColumn("movie_count", "int"),
    SummaryColumn("rating_count", "int"),
    SummaryColumn("rating_mean", "float"),
)

# Stamped on every Movie the write-back touches: which promoted run its properties show.
NEO4J_RUN_PROPERTY = "statsRunId"
NEO4J_PROPERTIES: tuple[str, ...] = tuple(c.neo4j for c in MOVIE_COLUMNS if c.neo4j) + (
    NEO4J_RUN_PROPERTY,
)
