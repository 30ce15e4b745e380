# PNS: `make run` starts one demo node; `make test` runs every test.
# Both create the virtualenvs and install what they need (redis-server too).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MONGO_VENV := .venv-mongo
PYENV_ROOT_DIR := $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)
PY313 := $(firstword $(wildcard $(PYENV_ROOT_DIR)/versions/3.13*/bin/python) $(shell command -v python3.13 2>/dev/null))
PNS_PORT ?= 8080
PYTEST_ARGS ?=

.PHONY: run test lint format typecheck system-deps mongo-venv clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## run: one node on the embedded default (SQLite + in-process manager), demo mode.
run: $(BIN)/.installed
	PNS_PORT=$(PNS_PORT) $(BIN)/pns serve --demo

## system-deps: redis-server from the system packages when missing (needs root).
system-deps:
	@if ! command -v redis-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; \
	  else echo "redis-server is missing: install it (apt-get install redis-server)"; exit 1; fi; \
	fi

## mongo-venv: the MongoDB wire-protocol stand-in (mongoeco, Python 3.13) for store tests.
$(MONGO_VENV)/.installed:
	@if [ -z "$(PY313)" ]; then echo "no Python 3.13 found: MongoDB tests will be skipped"; exit 0; fi; \
	$(PY313) -m venv $(MONGO_VENV) && \
	$(MONGO_VENV)/bin/pip install --quiet --upgrade pip && \
	$(MONGO_VENV)/bin/pip install --quiet "mongoeco[wire]>=4.11,<5" && touch $@

mongo-venv: $(MONGO_VENV)/.installed

test: $(BIN)/.installed system-deps mongo-venv
	$(BIN)/ruff check pns_sio tests examples
	$(BIN)/ruff format --check pns_sio tests examples
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check pns_sio tests
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff format pns_sio tests
	$(BIN)/ruff check --fix pns_sio tests

clean:
	rm -rf $(VENV) $(MONGO_VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache
