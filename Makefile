# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Byte-compiled once here, as an installed (non-editable) package would be: where the environment
# says not to write bytecode (PYTHONDONTWRITEBYTECODE), every command would compile the project again
# (0.1-0.2 s of each start, on an outage notice's path too). Python checks each file's time: a file
# edited since is compiled afresh (and cached again by the next `make demo` or `make test`).
COMPILE := $(BIN)/python -m compileall -q orchestrator flows channels

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	$(COMPILE)
	touch $@

# The tests also install an out-of-tree channel, as a user would install one (README, "Write your
# own channel"): it proves a package of its own adds a channel with no change to the core.
$(VENV)/.installed-test: pyproject.toml tests/plugins/webhook_channel/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,report]"
	$(BIN)/pip install --quiet -e tests/plugins/webhook_channel
	$(COMPILE)
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(COMPILE)
	$(BIN)/orchestrator demo

test: $(VENV)/.installed-test
	$(COMPILE)
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
