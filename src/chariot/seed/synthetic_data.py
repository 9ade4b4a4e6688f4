"""A MovieLens-shaped data generator, vectorised with numpy and produced in chunks.

Deterministic for a seed: movies depend only on (seed, number of movies); ratings and tags
on (seed, ratings, users, movies). Memory stays flat whatever the size: ratings are built
one chunk of users at a time (about ``CHUNK_RATINGS`` rows), only a per-user count array
lives for the whole run.

Shape, after ml-latest-small: movie popularity is Zipf-like (a few movies get most
ratings), ratings are half stars 0.5-5.0 around a per-movie quality plus a per-user bias,
users have log-normally distributed activity, tags are ~3.6% of ratings and some come in
two letter-case spellings on the same (user, movie) so the binary tag key matters.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

CHUNK_RATINGS = 500_000
MEAN_RATINGS_PER_USER = 165  # ml-latest-small: 100,836 ratings / 610 users
TAG_FRACTION = 0.036
TWIN_TAG_FRACTION = 0.05  # of tag rows, repeated with another letter case
FIRST_TIMESTAMP = 946_684_800  # 2000-01-01
LAST_TIMESTAMP = 1_537_799_250  # 2018-09-24, the last rating of ml-latest-small

GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
NO_GENRES = "(no genres listed)"
TITLE_WORDS = (
    "Love",
    "Night",
    "Dark",
    "City",
    "Man",
    "Woman",
    "Story",
    "Last",
    "Life",
    "Blood",
    "Dream",
    "King",
    "Lost",
    "Return",
    "Secret",
    "Summer",
    "War",
    "House",
    "Girl",
    "Star",
    "Café",
    "Amélie",
    "Señor",
    "Zoë",
    "Ghost",
    "River",
    "Street",
    "Time",
    "Game",
    "Dead",
)
# Lower-case spellings only, so the three case variants below are always distinct strings.
TAG_WORDS = (
    "funny",
    "atmospheric",
    "sci-fi",
    "twist ending",
    "dark comedy",
    "based on a book",
    "visually appealing",
    "thought-provoking",
    "classic",
    "superhero",
    "surreal",
    "quirky",
    "disney",
    "pixar",
    "stylized",
    "mindfuck",
    "satire",
    "space",
    "dystopia",
    "time travel",
    "netflix queue",
    "boring",
    "romance",
    "heist",
    "great soundtrack",
    '"artsy"',
    "funny, sad",
    "psychology",
    "war",
    "aliens",
)


def tag_vocabulary() -> np.ndarray:
    """Every spelling: word i has spellings 3i (as is), 3i+1 (Title Case), 3i+2 (UPPER)."""
    spellings = [variant for word in TAG_WORDS for variant in (word, word.title(), word.upper())]
    return np.array(spellings, dtype=object)


@dataclass(frozen=True)
class SyntheticSpec:
    ratings: int
    users: int
    movies: int
    seed: int = 0

    @classmethod
    def build(
        cls, ratings: int, users: int | None = None, movies: int | None = None, seed: int = 0
    ) -> SyntheticSpec:
        """Fill in defaults shaped like MovieLens (165 ratings per user, 10 per movie)."""
        if movies is None:
            movies = min(max(ratings // 10, 1_000), 60_000)
        if users is None:
            users = max(1, math.ceil(ratings / MEAN_RATINGS_PER_USER))
        return cls(ratings=ratings, users=users, movies=movies, seed=seed)

    @property
    def max_per_user(self) -> int:
        # Half the catalogue at most: drawing distinct movies stays fast and realistic.
        return max(1, self.movies // 2)

    def problem(self) -> str | None:
        if self.ratings < 0 or self.users < 1 or self.movies < 1:
            return "ratings must be >= 0, users and movies >= 1"
        if self.ratings > self.users * self.max_per_user:
            return (
                f"{self.ratings:,} ratings do not fit {self.users:,} users x "
                f"{self.movies:,} movies "
                f"(at most {self.max_per_user:,} ratings per user); raise --users or --movies"
            )
        return None


def _streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent random streams, so e.g. the movies do not change with the ratings count."""
    names = ("movies", "counts", "ratings", "tags")
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children, strict=True)}


# -- movies and links -------------------------------------------------------------------


def movie_ids(movies: int, seed: int) -> np.ndarray:
    """The ids ``generate_movies(movies, seed)`` gives, without building the titles."""
    return _draw_ids(_streams(seed)["movies"], movies)


def _draw_ids(rng: np.random.Generator, movies: int) -> np.ndarray:
    """Ascending, gapped ids (MovieLens ids are sparse too)."""
    return np.cumsum(rng.integers(1, 6, size=movies)).astype(np.int64)


def generate_movies(movies: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(movies, links) frames with MovieLens columns. Quirks on purpose: titles with commas,
    quotes and accents, ~0.4% ``(no genres listed)``, ~0.2% without a year, imdbIds with
    leading zeros, ~0.1% (at least one) NULL tmdbId."""
    rng = _streams(seed)["movies"]
    ids = _draw_ids(rng, movies)
    titles = _titles(rng, movies)
    frame = pd.DataFrame({"movieId": ids, "title": titles, "genres": _genres(rng, movies)})
    imdb = rng.integers(1, 10_000_000, size=movies)
    tmdb = pd.array(rng.integers(1, 600_000, size=movies), dtype="Int64")
    tmdb[rng.choice(movies, size=max(1, movies // 1000), replace=False)] = pd.NA
    imdb_ids = [f"{value:07d}" for value in imdb]  # a string with leading zeros, like MovieLens
    links = pd.DataFrame({"movieId": ids, "imdbId": imdb_ids, "tmdbId": tmdb})
    return frame, links


def _titles(rng: np.random.Generator, count: int) -> np.ndarray:
    words = np.array(TITLE_WORDS, dtype=object)
    first = words[rng.integers(0, len(words), count)]
    second = words[rng.integers(0, len(words), count)]
    titles = first + " " + second
    the = rng.random(count) < 0.05
    titles[the] = titles[the] + ", The"  # MovieLens style, needs CSV quoting
    quoted = rng.random(count) < 0.01
    titles[quoted] = '"' + titles[quoted] + '" Again'
    years = np.clip(2018 - rng.gamma(2.0, 9.0, count).astype(np.int64), 1902, 2018)
    with_year = rng.random(count) >= 0.002
    suffix = np.where(with_year, " (" + years.astype(str).astype(object) + ")", "")
    return titles + suffix


def _genres(rng: np.random.Generator, count: int) -> np.ndarray:
    picks = rng.random((count, len(GENRES))) < 0.12
    picks[np.arange(count), rng.integers(0, len(GENRES), count)] = True  # at least one
    names = np.array(GENRES, dtype=object)
    genres = np.array(["|".join(names[row]) for row in picks], dtype=object)
    genres[rng.random(count) < 0.004] = NO_GENRES
    return genres


# -- ratings and tags -------------------------------------------------------------------


@dataclass
class RatingsChunk:
    """Ratings of consecutive users, sorted by (userId, movieId); rating in half stars."""

    user_id: np.ndarray
    movie_id: np.ndarray
    half_stars: np.ndarray  # 1..10, i.e. rating * 2
    timestamp: np.ndarray

    def __len__(self) -> int:
        return len(self.user_id)


@dataclass
class TagsChunk:
    user_id: np.ndarray
    movie_id: np.ndarray
    tag: np.ndarray  # object array of str
    timestamp: np.ndarray


def ratings_per_user(spec: SyntheticSpec) -> np.ndarray:
    """Log-normal activity per user, adjusted so the counts sum exactly to ``spec.ratings``."""
    rng = _streams(spec.seed)["counts"]
    weights = rng.lognormal(0.0, 1.0, spec.users)
    counts = np.floor(weights / weights.sum() * spec.ratings).astype(np.int64)
    low = 1 if spec.ratings >= spec.users else 0
    counts = np.clip(counts, low, spec.max_per_user)
    return _fit_total(counts, spec.ratings, low, spec.max_per_user)


def _fit_total(counts: np.ndarray, total: int, low: int, high: int) -> np.ndarray:
    """Add to (or take from) users with room, evenly, until the counts sum to ``total``."""
    gap = total - int(counts.sum())
    while gap != 0:
        sign = 1 if gap > 0 else -1
        candidates = np.flatnonzero(counts < high) if gap > 0 else np.flatnonzero(counts > low)
        step = max(1, abs(gap) // len(candidates))
        chosen = candidates[: abs(gap)] if step == 1 else candidates
        counts[chosen] = np.clip(counts[chosen] + sign * step, low, high)
        gap = total - int(counts.sum())
    return counts


def generate_ratings(
    spec: SyntheticSpec, movie_ids: np.ndarray, first_user_id: int = 1
) -> Iterator[tuple[RatingsChunk, TagsChunk]]:
    """Yield (ratings, tags) chunks covering ``spec.ratings`` ratings in key order."""
    if (problem := spec.problem()) is not None:
        raise ValueError(problem)
    streams = _streams(spec.seed)
    rng, tag_rng = streams["ratings"], streams["tags"]
    counts = ratings_per_user(spec)
    popularity = _popularity_cdf(len(movie_ids), rng)
    quality = np.clip(rng.normal(3.5, 0.45, len(movie_ids)), 1.0, 4.8)
    vocabulary = tag_vocabulary()
    bounds = _chunk_bounds(counts)
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        chunk_counts = counts[start:stop]
        users, movies = _distinct_movies(rng, chunk_counts, popularity)
        ratings = _ratings_for(rng, users, movies, quality, start + first_user_id, movie_ids)
        yield ratings, _tags_for(tag_rng, ratings, vocabulary)


def _chunk_bounds(counts: np.ndarray) -> list[int]:
    """User indices where chunks start, each holding about CHUNK_RATINGS ratings."""
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1]) if len(cumulative) else 0
    cuts = np.searchsorted(cumulative, np.arange(CHUNK_RATINGS, total, CHUNK_RATINGS))
    return sorted({0, *(int(cut) + 1 for cut in cuts if cut + 1 < len(counts)), len(counts)})


def _popularity_cdf(movies: int, rng: np.random.Generator) -> np.ndarray:
    """Zipf-like popularity over a random order of the movies."""
    weights = 1.0 / (np.arange(movies) + 10.0) ** 1.1
    weights = weights[rng.permutation(movies)]
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _distinct_movies(
    rng: np.random.Generator, counts: np.ndarray, cdf: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each user i, counts[i] distinct movie indices, sorted by (user, movie).

    Draw with replacement by popularity, drop repeats, draw what is missing again; later
    rounds draw uniformly so heavy users reach the long tail quickly, and the rare user
    still short after that is finished by an exact fill.
    """
    movies = len(cdf)
    users = np.arange(len(counts), dtype=np.int64)
    keys = np.empty(0, dtype=np.int64)
    missing = counts.copy()
    for round_number in range(8):
        wanted = np.repeat(users, missing)
        if len(wanted) == 0:
            break
        if round_number < 3:
            drawn = np.searchsorted(cdf, rng.random(len(wanted)), side="right").clip(max=movies - 1)
        else:
            drawn = rng.integers(0, movies, len(wanted))
        keys = _sorted_unique(np.concatenate([keys, wanted * movies + drawn]))
        missing = counts - np.bincount(keys // movies, minlength=len(counts))
    if missing.any():
        keys = _exact_fill(rng, keys, missing, movies)
    return keys // movies, keys % movies


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    # np.unique hashes first in numpy 2.x; sort + neighbour compare is several times faster.
    values = np.sort(values)
    if len(values) == 0:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def _exact_fill(
    rng: np.random.Generator, keys: np.ndarray, missing: np.ndarray, movies: int
) -> np.ndarray:
    extra = [keys]
    users = keys // movies
    for user in np.flatnonzero(missing):  # rare: only users with most of the catalogue
        free = np.ones(movies, dtype=bool)
        free[keys[users == user] % movies] = False
        chosen = rng.choice(np.flatnonzero(free), size=int(missing[user]), replace=False)
        extra.append(user * movies + chosen)
    return np.sort(np.concatenate(extra))


def _ratings_for(
    rng: np.random.Generator,
    users: np.ndarray,
    movies: np.ndarray,
    quality: np.ndarray,
    first_user_id: int,
    ids: np.ndarray,
) -> RatingsChunk:
    user_count = int(users.max()) + 1 if len(users) else 0
    bias = rng.normal(0.0, 0.45, user_count)
    score = quality[movies] + bias[users] + rng.normal(0.0, 0.8, len(users))
    # People prefer whole stars (in MovieLens 4.0 is more common than 3.5 or 4.5).
    whole = rng.random(len(users)) < 0.55
    half_stars = np.where(whole, 2 * np.rint(score), np.rint(score * 2))
    half_stars = np.clip(half_stars, 1, 10).astype(np.int64)
    start = rng.integers(FIRST_TIMESTAMP, LAST_TIMESTAMP - 86_400, user_count)
    span = LAST_TIMESTAMP - start
    # Users rate in bursts: most of a user's ratings fall early in their active span.
    spread = rng.exponential(0.05, len(users)) * span[users]
    offset = np.minimum(spread, span[users]).astype(np.int64)
    return RatingsChunk(users + first_user_id, ids[movies], half_stars, start[users] + offset)


def _tags_for(rng: np.random.Generator, ratings: RatingsChunk, vocabulary: np.ndarray) -> TagsChunk:
    rows = np.flatnonzero(rng.random(len(ratings)) < TAG_FRACTION)
    words = rng.integers(0, len(TAG_WORDS), len(rows))
    variants = rng.choice(3, size=len(rows), p=[0.8, 0.15, 0.05])
    twins = rng.random(len(rows)) < TWIN_TAG_FRACTION
    # A twin keeps the (user, movie, word) and takes the next spelling: a distinct key.
    rows = np.concatenate([rows, rows[twins]])
    spelling = np.concatenate([words * 3 + variants, words[twins] * 3 + (variants[twins] + 1) % 3])
    order = np.lexsort((spelling, rows))
    rows, spelling = rows[order], spelling[order]
    timestamp = ratings.timestamp[rows] + rng.integers(0, 3_600, len(rows))
    return TagsChunk(ratings.user_id[rows], ratings.movie_id[rows], vocabulary[spelling], timestamp)
