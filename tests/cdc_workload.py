"""A source that keeps changing: seeded, reproducible transactions over the MovieLens tables.

Each transaction mixes inserts (above and below the highest key), updates (some moving a
rating to another movie: a key change), deletes, title changes and case-only tag changes.
The workload keeps its own model of which keys exist, so every statement changes a row.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from chariot.config import MySQLSettings
from chariot.connections import mysql_connect


class ChangeWorkload:
    def __init__(self, mysql: MySQLSettings, seed: int = 11) -> None:
        self.mysql = mysql
        self.random = random.Random(seed)
        self.connection = mysql_connect(mysql)
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT userId, movieId FROM ratings")
            self.ratings = _Keys((int(u), int(m)) for u, m in cursor.fetchall())
            cursor.execute("SELECT movieId FROM movies")
            self.movies = sorted(int(m) for (m,) in cursor.fetchall())
            cursor.execute("SELECT userId, movieId, tag FROM tags")
            self.tags = [(int(u), int(m), str(t)) for u, m, t in cursor.fetchall()]
        self.connection.commit()
        self.next_user = max(u for u, _ in self.ratings) + 1
        self.transactions = 0
        self.changes = 0

    def close(self) -> None:
        self.connection.close()

    def transaction(self, size: int | None = None) -> None:
        """One source transaction of ``size`` (default 1-20) random row changes."""
        size = size or self.random.randint(1, 20)
        with self.connection.cursor() as cursor:
            for _ in range(size):
                self._change(cursor)
        self.connection.commit()
        self.transactions += 1
        self.changes += size

    def run(self, stop: threading.Event, transactions: int | None = None) -> None:
        """Transactions until ``stop`` is set (or ``transactions`` were made)."""
        while not stop.is_set() and (transactions is None or self.transactions < transactions):
            self.transaction()

    def _change(self, cursor: Any) -> None:
        pick = self.random.random()
        rating = self.random.choice((0.5, 1.0, 2.5, 3.0, 4.5, 5.0))
        stamp = self.random.randint(900_000_000, 1_700_000_000)
        if pick < 0.25 or not self.ratings:  # insert, half of them below the highest key
            user = self.next_user if pick < 0.12 else self.random.randint(1, self.next_user - 1)
            movie = self.random.choice(self.movies)
            if (user, movie) in self.ratings:
                return self._change(cursor)
            if user == self.next_user:
                self.next_user += 1
            cursor.execute(
                "INSERT INTO ratings (userId, movieId, rating, timestamp) VALUES (%s,%s,%s,%s)",
                (user, movie, rating, stamp),
            )
            self.ratings.add((user, movie))
        elif pick < 0.5:  # update in place
            user, movie = self._some_rating()
            cursor.execute(
                "UPDATE ratings SET rating=%s, timestamp=%s WHERE userId=%s AND movieId=%s",
                (rating, stamp, user, movie),
            )
        elif pick < 0.6:  # an update that moves the rating to another movie: a key change
            user, movie = self._some_rating()
            other = self.random.choice(self.movies)
            if (user, other) in self.ratings:
                return self._change(cursor)
            cursor.execute(
                "UPDATE ratings SET movieId=%s WHERE userId=%s AND movieId=%s",
                (other, user, movie),
            )
            self.ratings.discard((user, movie))
            self.ratings.add((user, other))
        elif pick < 0.85:  # delete
            user, movie = self._some_rating()
            cursor.execute("DELETE FROM ratings WHERE userId=%s AND movieId=%s", (user, movie))
            self.ratings.discard((user, movie))
        elif pick < 0.95:  # a movie's title changes
            movie = self.random.choice(self.movies)
            cursor.execute(
                "UPDATE movies SET title=%s WHERE movieId=%s",
                (f"Retitled {self.random.randint(1, 10**6)} (1999)", movie),
            )
        elif self.tags:  # a case-only change of a text key
            index = self.random.randrange(len(self.tags))
            user, movie, tag = self.tags[index]
            flipped = tag.swapcase()
            if flipped == tag or (user, movie, flipped) in self.tags:
                return self._change(cursor)
            cursor.execute(
                "UPDATE tags SET tag=%s WHERE userId=%s AND movieId=%s AND tag=%s",
                (flipped, user, movie, tag),
            )
            self.tags[index] = (user, movie, flipped)
        return None

    def _some_rating(self) -> tuple[int, int]:
        return self.ratings.choice(self.random)


class _Keys:
    """A set with O(1) random choice (a list plus each key's index in it)."""

    def __init__(self, keys: Any) -> None:
        self.items: list[tuple[int, int]] = list(keys)
        self.index = {key: i for i, key in enumerate(self.items)}

    def __contains__(self, key: object) -> bool:
        return key in self.index

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Any:
        return iter(self.items)

    def add(self, key: tuple[int, int]) -> None:
        if key not in self.index:
            self.index[key] = len(self.items)
            self.items.append(key)

    def discard(self, key: tuple[int, int]) -> None:
        i = self.index.pop(key, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.index[last] = i

    def choice(self, rng: random.Random) -> tuple[int, int]:
        return rng.choice(self.items)
