# Chariot developer tasks. Real servers, no Docker: see scripts/services.sh.
#   make venv | services | services-down | services-status | test | demo | bench | lint | docs
#        | dist-check | movielens | clean
# Variables: PYTHON (for the venv), PYTEST_ARGS (passed to pytest), MOVIELENS_DIR (MovieLens data).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
PIP_EXTRAS ?= test,dask,lint,docs,dist,fast
PYTEST_ARGS ?=
# MovieLens ml-latest-small for the tests and the demo: CHARIOT_MOVIELENS_DIR when set, else
# ../shared/data/ml-latest-small when it exists, else empty: then `chariot seed movielens`'s
# own cache is used (`make movielens` fills it where the network allows).
SHARED_MOVIELENS := ../shared/data/ml-latest-small
MOVIELENS_DIR ?= $(or $(CHARIOT_MOVIELENS_DIR),$(if $(wildcard $(SHARED_MOVIELENS)/ratings.csv),$(abspath $(SHARED_MOVIELENS))))

# Exports every CHARIOT_* setting (environment > .env > .env.example) into a recipe's shell.
LOAD_ENV = eval "$$(scripts/env.sh)"

.PHONY: help venv services services-down services-status test demo bench lint docs dist-check \
	movielens clean distclean

help:
	@echo "make venv             create .venv and install chariot[$(PIP_EXTRAS)] (redone when pyproject.toml changes)"
	@echo "make services         start MariaDB, PostgreSQL and Neo4j (no Docker) and wait until they answer"
	@echo "make services-down    stop them (data stays in .services/)"
	@echo "make services-status  one line per server"
	@echo "make test             services + pytest (PYTEST_ARGS='-k foo -x' to pass arguments)"
	@echo "make demo             services + seed MovieLens ($(or $(MOVIELENS_DIR),download cache)) + chariot run + chariot status"
	@echo "make bench            services + bench/run_all.py"
	@echo "make lint             ruff check, ruff format --check, mypy src (pinned versions)"
	@echo "make docs             the documentation site into site/ (mkdocs build --strict)"
	@echo "make dist-check       build the wheel and sdist, install each in a clean venv, run chariot --help"
	@echo "make movielens        download ml-latest-small into chariot's cache (for tests and the demo)"
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
	if [ -n "$(MOVIELENS_DIR)" ]; then export CHARIOT_MOVIELENS_DIR="$(abspath $(MOVIELENS_DIR))"; fi; \
	rc=0; $(VENV)/bin/python -m pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: FAILED: pytest ran no tests (exit status 5)" >&2; fi; \
	exit $$rc

demo: services
	@$(LOAD_ENV); \
	set -x; \
	export CHARIOT_PROJECT=examples/movielens/chariot.toml; \
	$(VENV)/bin/chariot seed movielens $(if $(MOVIELENS_DIR),--dir "$(MOVIELENS_DIR)"); \
	$(VENV)/bin/chariot run; \
	$(VENV)/bin/chariot status

bench: services
	@$(LOAD_ENV); \
	if [ -n "$(MOVIELENS_DIR)" ]; then export CHARIOT_MOVIELENS_DIR="$(abspath $(MOVIELENS_DIR))"; fi; \
	if [ -f bench/run_all.py ]; then $(VENV)/bin/python bench/run_all.py; \
	else echo "make bench: bench/run_all.py does not exist yet, nothing to run"; fi

lint: venv
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy src

# The exit-code and project-file pages are generated from chariot.exit_codes and the models of
# chariot.project (tests/test_docs.py checks they are current).
docs: venv
	$(VENV)/bin/python scripts/exit_codes_page.py
	$(VENV)/bin/python scripts/project_file_page.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

dist-check: venv
	scripts/dist_check.sh $(VENV)/bin/python

movielens: venv
	@$(VENV)/bin/python scripts/fetch_movielens.py

clean:
	rm -rf build dist site .pytest_cache .ruff_cache .mypy_cache .hypothesis .cache src/*.egg-info
	find . -path ./.venv -prune -o -path ./.services -prune -o -type d -name __pycache__ -print0 | xargs -0 rm -rf

distclean: clean
	-scripts/services.sh down
	rm -rf .services $(VENV)
