#!/usr/bin/env bash
# The benchmarks' references and extras on a fresh machine (`make bench-tools`). Idempotent:
# installs only what is missing.
#   - pgloader, the MySQL -> PostgreSQL reference of bench/scale_bench.py: the Debian/Ubuntu
#     package (apt-get; sudo when not root). Elsewhere: install it yourself, the bench only
#     needs `pgloader` on PATH.
#   - the Python extras the benches import, into the given interpreter's environment
#     (default .venv/bin/python): chariot[BENCH_EXTRAS] (default dask,test: the Dask
#     executor and the test suite's Neo4j lock helpers).
# Usage: scripts/bench_tools.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${1:-.venv/bin/python}
EXTRAS=${BENCH_EXTRAS:-dask,test}

if command -v pgloader >/dev/null 2>&1; then
    echo "pgloader: present ($(pgloader --version 2>/dev/null | head -n 1))"
elif command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "pgloader: installing the Debian package"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends pgloader
    echo "pgloader: $(pgloader --version | head -n 1)"
else
    echo "pgloader: not found and no apt-get here: install pgloader (3.6 or later) yourself" >&2
    exit 1
fi

if [ ! -x "$PYTHON" ]; then
    echo "$PYTHON does not exist: run \`make venv\` first (or pass the interpreter)" >&2
    exit 1
fi
# pip skips what is already installed at a satisfying version.
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e ".[$EXTRAS]"
echo "python extras: chariot[$EXTRAS] installed in $("$PYTHON" -c 'import sys; print(sys.prefix)')"
