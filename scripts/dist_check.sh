#!/usr/bin/env bash
# make dist-check: build the wheel and the sdist, install each into a clean venv and run
# `chariot --help` and `chariot --version` from it. Also checks that the wheel ships py.typed
# and the LICENSE, and that its metadata carries the PEP 639 license expression.
#   scripts/dist_check.sh [PYTHON]     (PYTHON: the venv's python with `build`; default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."

python="${1:-.venv/bin/python}"
work="$(mktemp -d "${TMPDIR:-/tmp}/chariot-dist-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "dist-check: building into $work/dist"
"$python" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || {
    cat "$work/build.log" >&2
    echo "dist-check: FAILED: python -m build" >&2
    exit 1
}
wheel=("$work"/dist/*.whl)
sdist=("$work"/dist/*.tar.gz)
[[ -f "${wheel[0]}" && -f "${sdist[0]}" ]] || { echo "dist-check: FAILED: no wheel or sdist" >&2; exit 1; }

"$python" - "${wheel[0]}" <<'PY'
import sys
import zipfile

names = zipfile.ZipFile(sys.argv[1]).namelist()
metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
text = zipfile.ZipFile(sys.argv[1]).read(metadata).decode()
problems = [
    message
    for ok, message in [
        ("chariot/py.typed" in names, "chariot/py.typed is not in the wheel"),
        (any(n.endswith(".dist-info/licenses/LICENSE") for n in names), "LICENSE is not in the wheel"),
        ("License-Expression: MIT" in text, "METADATA has no License-Expression: MIT"),
    ]
    if not ok
]
for message in problems:
    print(f"dist-check: FAILED: {message}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY

# One clean venv: the wheel with all its dependencies, then the wheel swapped for the sdist
# (same dependencies, already there: a second full install would double the time).
venv="$work/venv"
python3 -m venv "$venv"
for artefact in "${wheel[0]}" "${sdist[0]}"; do
    echo "dist-check: $(basename "$artefact") into $venv"
    "$venv/bin/python" -m pip uninstall --quiet --yes chariot >/dev/null 2>&1 || true
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$artefact"
    # Outside the checkout and without CHARIOT_* settings: only the installed package counts.
    (cd "$work" && env -u PYTHONPATH "$venv/bin/chariot" --help >/dev/null)
    (cd "$work" && "$venv/bin/chariot" --version)
done
echo "dist-check: OK"
