# Chariot developer tasks. Real servers, no Docker: see scripts/services.sh.
#   make venv | services | services-down | services-status | test | demo | bench | lint | clean
# Variables: PYTHON (for the venv), PYTEST_ARGS (passed to pytest), MOVIELENS_DIR (demo data).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
PIP_EXTRAS ?= test,dask,lint
PYTEST_ARGS ?=
MOVIELENS_DIR ?= ../shared/data/ml-latest-small

# Exports every CHARIOT_* setting (environment > .env > .env.example) into a recipe's shell.
LOAD_ENV = eval "$$(scripts/env.sh)"

.PHONY: help venv services services-down services-status test demo bench lint clean distclean

help:
	@echo "make venv             create .venv and install chariot[$(PIP_EXTRAS)] (redone when pyproject.toml changes)"
	@echo "make services         start MariaDB, PostgreSQL and Neo4j (no Docker) and wait until they answer"
	@echo "make services-down    stop them (data stays in .services/)"
	@echo "make services-status  one line per server"
	@echo "make test             services + pytest (PYTEST_ARGS='-k foo -x' to pass arguments)"
	@echo "make demo             services + seed MovieLens ($(MOVIELENS_DIR)) + chariot run + chariot status"
	@echo "make bench            services + bench/run_all.py"
	@echo "make lint             ruff check, ruff format --check, mypy src (pinned versions)"
	@echo "make clean            remove caches and build artefacts (keeps .venv and .services)"
	@echo "make distclean        clean + stop services + remove .services/ (all server data) and .venv"

$(VENV_STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[$(PIP_EXTRAS)]'
	@touch $@

venv: $(VENV_STAMP)

services: venv
	scripts/services.sh up

services-down:
	scripts/services.sh down

services-status:
	@scripts/services.sh status

test: services
	@$(LOAD_ENV); \
	export CHARIOT_REQUIRE_SERVICES=1; \
	export CHARIOT_MOVIELENS_DIR="$${CHARIOT_MOVIELENS_DIR:-$(abspath $(MOVIELENS_DIR))}"; \
	rc=0; $(VENV)/bin/python -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: FAILED: pytest ran no tests (exit status 5)" >&2; fi; \
	exit $$rc

demo: services
	@$(LOAD_ENV); \
	test -d "$(MOVIELENS_DIR)" || { echo "make demo: no MovieLens data at $(MOVIELENS_DIR) (set MOVIELENS_DIR=...)" >&2; exit 1; }; \
	set -x; \
	$(VENV)/bin/chariot seed movielens --dir "$(MOVIELENS_DIR)"; \
	$(VENV)/bin/chariot run; \
	$(VENV)/bin/chariot status

bench: services
	@$(LOAD_ENV); \
	if [ -f bench/run_all.py ]; then $(VENV)/bin/python bench/run_all.py; \
	else echo "make bench: bench/run_all.py does not exist yet, nothing to run"; fi

lint: venv
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy src

clean:
	rm -rf build dist .pytest_cache .ruff_cache .mypy_cache .hypothesis .cache src/*.egg-info
	find . -path ./.venv -prune -o -path ./.services -prune -o -type d -name __pycache__ -print0 | xargs -0 rm -rf

distclean: clean
	-scripts/services.sh down
	rm -rf .services $(VENV)
