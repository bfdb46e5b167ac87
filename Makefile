# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# The tests also install an out-of-tree channel, as a user would install one (README, "Write your
# own channel"): it proves a package of its own adds a channel with no change to the core.
$(VENV)/.installed-test: pyproject.toml tests/plugins/webhook_channel/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,report]"
	$(BIN)/pip install --quiet -e tests/plugins/webhook_channel
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/orchestrator demo

test: $(VENV)/.installed-test
	$(BIN)/ruff check orchestrator flows channels tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy orchestrator channels flows
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check orchestrator flows channels tests bench
	$(BIN)/orchestrator templates lint

bench: $(VENV)/.installed-test
	$(BIN)/pip install --quiet -e ".[test,report,bench]" && $(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) orchestrator.db* outbox .pytest_cache .mypy_cache .import_linter_cache
