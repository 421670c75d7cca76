# The two set-up commands of the README: `make run` serves, `make test` tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench-append

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/midas serve

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench-append: $(STAMP)
	$(BIN)/python -m bench.append
