# PNS: `make run` starts one demo node; `make test` runs every test.
# Both create the virtualenvs and install what they need (redis-server, nginx and chromium too).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MONGO_VENV := .venv-mongo
PYENV_ROOT_DIR := $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)
PY313 := $(firstword $(wildcard $(PYENV_ROOT_DIR)/versions/3.13*/bin/python) $(shell command -v python3.13 2>/dev/null))
PNS_PORT ?= 8080
PYTEST_ARGS ?=

.PHONY: run test lint format typecheck system-deps mongo-venv clean dist

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## run: one node on the embedded default (SQLite + in-process manager), demo mode.
run: $(BIN)/.installed
	PNS_PORT=$(PNS_PORT) $(BIN)/pns serve --demo

## system-deps: redis-server (and redis-cli, which makes the tests' Redis Cluster) and nginx from the system packages when missing (needs root).
# nginx lives in /usr/sbin, off a user's PATH. Without it (and without root) the
# reverse-proxy tests skip and say so; without redis-server nothing runs.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v redis-cli >/dev/null 2>&1 || missing="$$missing redis-tools"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  elif ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then \
	    echo "missing:$$missing: install it (apt-get install$$missing)"; exit 1; \
	  else echo "nginx is missing: the reverse-proxy tests will be skipped (apt-get install nginx)"; fi; \
	fi

## mongo-venv: the MongoDB wire-protocol stand-in (mongoeco, Python 3.13) for store tests.
$(MONGO_VENV)/.installed:
	@if [ -z "$(PY313)" ]; then echo "no Python 3.13 found: MongoDB tests will be skipped"; exit 0; fi; \
	$(PY313) -m venv $(MONGO_VENV) && \
	$(MONGO_VENV)/bin/pip install --quiet --upgrade pip && \
	$(MONGO_VENV)/bin/pip install --quiet "mongoeco[wire]>=4.11,<5" && touch $@

mongo-venv: $(MONGO_VENV)/.installed

## test: every check (lint, types, pytest, JS bundle, JS client, Chromium); all run, one summary at the end.
test: $(BIN)/.installed system-deps mongo-venv js-deps chromium
	PYTEST_ARGS="$(PYTEST_ARGS)" NODE=$(NODE) $(BIN)/python .ci/make_test.py

lint: $(BIN)/.installed
	$(BIN)/ruff check pns_sio tests
	$(BIN)/mypy

format: $(BIN)/.installed
	$(BIN)/ruff format pns_sio tests
	$(BIN)/ruff check --fix pns_sio tests

clean:
	rm -rf $(VENV) $(MONGO_VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache
	rm -rf $(JS_DIR)/node_modules

# -- the JS client (clients/js) -------------------------------------------------
NPM ?= npm
NODE ?= node
JS_DIR := clients/js
JS_ENV := PNS_BIN=$(CURDIR)/$(BIN)/pns

.PHONY: js-deps js-bundle js-bundle-check js-test chromium demo-screenshot

## js-deps: the JS client's packages (npm ci), again whenever package-lock.json changes.
$(JS_DIR)/node_modules/.installed: $(JS_DIR)/package-lock.json $(JS_DIR)/package.json
	cd $(JS_DIR) && $(NPM) ci --no-audit --no-fund
	touch $@

js-deps: $(JS_DIR)/node_modules/.installed

## chromium: Debian's chromium for the end-to-end test, when missing (needs root).
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "chromium is missing: install it (apt-get install chromium)"; exit 1; fi; \
	fi

## dist: a wheel of pns-sio in dist/, for `pip install` where PNS is not checked out.
dist: $(BIN)/.installed
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .
	@ls dist/*.whl

## js-bundle: rebuild pns_sio/static/pns-client.js and its map from clients/js/src (commit both).
js-bundle: js-deps
	cd $(JS_DIR) && $(NODE) build.mjs

## js-bundle-check: fail when the committed bundle is stale against clients/js/src.
js-bundle-check: js-deps
	cd $(JS_DIR) && $(NODE) build.mjs --check

## js-test: the client under Node against real nodes, then end to end in headless Chromium.
js-test: $(BIN)/.installed system-deps js-deps chromium
	cd $(JS_DIR) && $(JS_ENV) $(NODE) --test --test-reporter=spec test/client.test.js test/reconnect.test.js test/package.test.js
	cd $(JS_DIR) && $(JS_ENV) $(NODE) --test --test-reporter=spec test/e2e.test.js test/tabs.test.js

## demo-screenshot: refresh docs/demo.png (the demo page, from the end-to-end test).
demo-screenshot: $(BIN)/.installed js-deps chromium
	cd $(JS_DIR) && $(JS_ENV) PNS_SCREENSHOT=$(CURDIR)/docs/demo.png $(NODE) --test --test-reporter=spec test/e2e.test.js

# -- benchmarks (bench/) ----------------------------------------------------------
BENCH_PEER := bench/peers/node-socketio
BENCH_LOADGEN := bench/loadgen
BENCH_ARGS ?=

.PHONY: bench bench-full bench-deps

$(BIN)/.installed-bench: pyproject.toml $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

## bench-deps: the bench extra (matplotlib, py-spy) and the npm packages of the peer and the load generator.
$(BENCH_PEER)/node_modules/.installed: $(BENCH_PEER)/package-lock.json $(BENCH_PEER)/package.json
	cd $(BENCH_PEER) && npm ci --no-audit --no-fund
	touch $@

$(BENCH_LOADGEN)/node_modules/.installed: $(BENCH_LOADGEN)/package-lock.json $(BENCH_LOADGEN)/package.json
	cd $(BENCH_LOADGEN) && npm ci --no-audit --no-fund
	touch $@

bench-deps: $(BIN)/.installed-bench system-deps $(BENCH_PEER)/node_modules/.installed $(BENCH_LOADGEN)/node_modules/.installed

## bench: a short run (< 3 min, 2,000 devices) of PNS against the Node socket.io peer; writes bench/results/latest.json.
bench: bench-deps
	$(BIN)/python bench/run.py --profile short $(BENCH_ARGS)

## bench-full: the full sizes of the benchmark issue (19,000 idle devices, 60 s steps); see bench/RESULTS.md.
bench-full: bench-deps
	$(BIN)/python bench/run.py --profile full $(BENCH_ARGS)

# -- soak (tests/soak/) -------------------------------------------------------------
SOAK_SECONDS ?= 600
SOAK_DEVICES ?= 300
SOAK_SEED ?= 1
SOAK_ROUTING ?= broadcast

.PHONY: soak

## soak: 3 nodes, one Redis, SOAK_DEVICES devices, nodes killed and Redis restarted at random for SOAK_SECONDS; then a checker (exit 1 on any violation). SOAK_ROUTING=routed: the nodes in routed mode.
soak: $(BIN)/.installed system-deps
	$(BIN)/python -m tests.soak.soak --seconds $(SOAK_SECONDS) --devices $(SOAK_DEVICES) --seed $(SOAK_SEED) --routing $(SOAK_ROUTING)
