# Set-up is part of every target: on a fresh machine `make demo` or `make test` is all you run.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.oarl-installed
PYTHON ?= python3

.PHONY: setup demo test lint fmt bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, alone: 2.13.0 is the local CPU build (an unpinned torch pulls GBs of CUDA packages).
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/oarl demo

lint: setup
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

test: lint
	$(PY) -m pytest

fmt: setup
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
