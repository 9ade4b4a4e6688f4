#!/usr/bin/env bash
# Print the project's CHARIOT_* settings as shell `export` lines, e.g.
#     eval "$(scripts/env.sh)"            # all CHARIOT_* keys
#     eval "$(scripts/env.sh MYSQL POSTGRES NEO4J)"   # only those sections
# Precedence (highest first): the current environment, .env, .env.example.
# The files are parsed, never sourced: KEY=VALUE lines, optional `export `, optional
# single/double quotes, ` # comment` after an unquoted value (same rules as python-dotenv).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
sections=("$@")

declare -A from_file=()
order=()

parse_file() {
    local file="$1" line key value
    [[ -f "$file" ]] || return 0
    while IFS= read -r line || [[ -n "$line" ]]; do
        line="${line%$'\r'}"
        [[ "$line" =~ ^[[:space:]]*(export[[:space:]]+)?(CHARIOT_[A-Za-z0-9_]+)[[:space:]]*=(.*)$ ]] || continue
        key="${BASH_REMATCH[2]}"
        value="${BASH_REMATCH[3]}"
        value="${value#"${value%%[![:space:]]*}"}"          # strip leading blanks
        if [[ "$value" =~ ^\"(.*)\"[[:space:]]*(#.*)?$ ]]; then
            value="${BASH_REMATCH[1]}"
        elif [[ "$value" =~ ^\'(.*)\'[[:space:]]*(#.*)?$ ]]; then
            value="${BASH_REMATCH[1]}"
        else
            value="${value%%[[:space:]]#*}"                  # inline comment
            value="${value%"${value##*[![:space:]]}"}"       # strip trailing blanks
        fi
        [[ -v "from_file[$key]" ]] || order+=("$key")
        from_file[$key]="$value"
    done <"$file"
}

parse_file "$root/.env.example"
parse_file "$root/.env"

wanted() {
    local key="$1" s
    ((${#sections[@]} == 0)) && return 0
    for s in "${sections[@]}"; do
        [[ "$key" == "CHARIOT_${s^^}__"* ]] && return 0
    done
    return 1
}

for key in "${order[@]}"; do
    wanted "$key" || continue
    if [[ -v "$key" ]]; then
        value="${!key}"                                      # environment wins
    else
        value="${from_file[$key]}"
    fi
    printf 'export %s=%q\n' "$key" "$value"
done
# Keys set only in the environment (not in the files) are already visible to children.
