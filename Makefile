# realtime-strategies — two set-up commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CAPTURE ?= ../shared/data/binance-spot-btcusdt-2024-08-08.jsonl.gz

.PHONY: install run test lint typecheck layers unit integration services backtest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The service's main job on embedded defaults: replay of the bundled capture as the feed,
## SQLite config store, API on 127.0.0.1:8080, signals printed.
run: $(STAMP)
	$(BIN)/realtime-strategies run-local --capture $(CAPTURE)

## Everything CI runs: lint, types, layer contract, unit and integration tests.
test: $(STAMP) services lint typecheck layers
	$(BIN)/pytest -q -p no:cacheprovider tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

integration: $(STAMP) services
	$(BIN)/pytest -q tests/integration

## Start NATS (JetStream) and MariaDB if they are not running; install them if absent, and
## promtool and chromium for the deploy and console browser tests (scripts/ensure-services.sh).
services:
	bash scripts/ensure-services.sh

backtest: $(STAMP)
	$(BIN)/realtime-strategies backtest $(CAPTURE) --out out/backtest

bench: $(STAMP)
	$(PY) bench/backtest_throughput.py $(CAPTURE)

clean:
	rm -rf $(VENV) out .mypy_cache .ruff_cache .pytest_cache
