# The two commands a new user needs: `make run` (the whole system on the simulator)
# and `make test` (the full test suite). Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test setup setup-test node lint bench stop

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install --quiet -e .

setup-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

node:
	@if command -v npm >/dev/null 2>&1; then cd clients/node && npm ci --no-audit --no-fund; \
	else echo "npm not found: skipping the Node client install (its tests will skip)"; fi

run: setup
	mkdir -p logs run data
	$(BIN)/supervisord -c supervisord.conf

stop:
	$(BIN)/supervisorctl -c supervisord.conf shutdown

test: setup-test node
	$(BIN)/pytest

lint: setup-test
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

bench: setup-test
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench
