"""Download ml-latest-small into `chariot seed movielens`'s cache (`make movielens`).

Tests and `make demo` use that cache when CHARIOT_MOVIELENS_DIR is not set. Prints the
cached directory, or one line saying why it could not be fetched (exit 8).
"""

from __future__ import annotations

import sys

from chariot.errors import DataError
from chariot.seed.download import cached_movielens_small


def main() -> int:
    try:
        directory, downloaded = cached_movielens_small()
    except DataError as error:
        print(f"make movielens: {error}", file=sys.stderr)
        return int(error.exit_code)
    print(f"{'downloaded to' if downloaded else 'already cached in'} {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
