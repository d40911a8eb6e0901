# The two commands a new user needs: `make run` (the whole system on the simulator)
# and `make test` (the full test suite). Both set up .venv on first use.
# `make test-fast` runs the unit tier alone (no process started; well under 30 s).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast setup setup-test setup-dev node lint bench stop status health

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# the processes need the server extra; `pip install qmtbus` alone is the client.
# Installed once, again only when pyproject.toml changes: `make run` then starts offline.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[server]'
	touch $@

setup: $(VENV)/.installed

setup-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.installed

# for contributors: the test tools, pre-commit, and the git hooks of .pre-commit-config.yaml
setup-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pre-commit install

node:
	@if command -v npm >/dev/null 2>&1; then cd clients/node && npm ci --no-audit --no-fund; \
	else echo "npm not found: skipping the Node client install (its tests will skip)"; fi

# supervisord gives its programs TZ=Asia/Shanghai; TZ here makes its own log agree.
# exec: supervisord replaces the shell, so Ctrl-C stops it cleanly and make reports no
# "Interrupt" (supervisord stops its programs and exits 0).
run: setup
	@mkdir -p logs run data
	@echo "qmtbus: starting gateway, recorder and scheduler under supervisord (Ctrl-C stops all)"
	@TZ=Asia/Shanghai exec $(BIN)/supervisord -c supervisord.conf

stop:
	$(BIN)/supervisorctl -c supervisord.conf shutdown

status:
	$(BIN)/supervisorctl -c supervisord.conf status

health:
	$(BIN)/qmtbus --config qmtbus.toml health

test: setup-test node
	$(BIN)/pytest -n 2

test-fast: setup-test
	$(BIN)/pytest -n 2 -q -m "not process"

lint: setup-test
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && .ci/mypy

bench: setup-test
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/pip install --quiet --no-deps vnpy==4.5.0
	$(BIN)/python -m bench
