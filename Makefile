# Set-up is part of every target: on a fresh machine `make demo` or `make test` is all you run.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.oarl-installed
PYTHON ?= python3

.PHONY: setup demo test lint fmt bench clean gpu-check

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

# On a GPU machine with vllm installed (README, "GPU / scale"): bf16 vs float32 scores, then 2 trainer steps of
# GRPO / OAR-G / OAR-P with vLLM generation, timed. Without a GPU, oarl gpu-check says so and exits 2.
gpu-check: setup
	@test -n "$(MODEL)" || { echo "usage: make gpu-check MODEL=/path/to/local/model (e.g. Qwen2.5-1.5B-Instruct)"; exit 2; }
	$(VENV)/bin/oarl gpu-check --model "$(MODEL)" $(ARGS)

fmt: setup
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
