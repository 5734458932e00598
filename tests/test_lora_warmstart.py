"""SmolLM2's LoRA warm start on the word-problem task: shipped, keyed by the task's data, gated.

Reads the shipped files only (no model load): if the task's SFT data or the SFT settings change, the adapter's
name changes and the first test fails until it is re-made with ``oarl warmstart --task wordop --ship`` (with
``--chatter heavy`` for the heavy-chatter one).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from oarl.lab.testbed.lora_gate import GATE, gate_failures
from oarl.lab.testbed.lora_warmstart import (
    LoraSFTConfig,
    adapter_name,
    data_fingerprint,
    sft_batch,
    shipped_adapter,
)
from oarl.lab.testbed.tasks import get_task_recipe
from oarl.lab.testbed.tasks.wordop import WordOpConfig
from oarl.lab.testbed.tasks.wordop_task import WordOpTask

RECIPE = get_task_recipe("wordop")
TASK = RECIPE.make(RECIPE.config)


@pytest.mark.parametrize(
    "chatter",
    [
        "none",  # the shipped warm start of the real-LM study
        "heavy",  # knob 2's and knob 5's of the regime pilot, where `make gpu-families` runs
    ],
)
def test_the_wordop_adapter_ships_and_matches_the_task(chatter):
    cfg = LoraSFTConfig()
    task = RECIPE.make(replace(RECIPE.config, chatter=chatter))
    path = shipped_adapter(task, cfg)
    assert path is not None, (
        f"no shipped adapter {adapter_name(task, cfg)}: the wordop task's SFT data or the LoRA SFT settings "
        f"changed; re-make it with `oarl warmstart --task wordop --chatter {chatter} --threads 2 --ship`"
    )
    meta = json.loads((path / "oarl_warmstart.json").read_text())
    assert meta["task"] == json.loads(json.dumps(task.identity()))
    assert meta["data"] == data_fingerprint(task)
    assert not gate_failures(meta["held_out"])  # what `--ship` checked before copying it
    # sampled with room to finish (the first adapter's record predates the key: it was gated at 32, its budget)
    assert meta["held_out"].get("max_new_tokens", 32) == task.completion_budget[chatter]
    assert json.loads((path / "adapter_config.json").read_text())["r"] == cfg.rank
    assert (path / "adapter_model.safetensors").stat().st_size < 8_000_000  # a few MB of package data


def test_the_name_follows_the_data_and_the_settings():
    cfg = LoraSFTConfig()
    assert adapter_name(TASK, cfg) == adapter_name(WordOpTask(), cfg)
    assert adapter_name(WordOpTask(WordOpConfig(fidelity=0.7)), cfg) != adapter_name(TASK, cfg)
    assert adapter_name(TASK, replace(cfg, steps=10)) != adapter_name(TASK, cfg)


def test_the_gate_names_what_it_misses():
    ok = {"format": 0.99, "exec": 0.95, "choice": 0.65}
    assert gate_failures(ok) == []
    assert gate_failures({**ok, "format": 0.9}) == [f"format 0.900 < {GATE['format']}"]
    assert "choice 0.950 outside" in gate_failures({**ok, "choice": 0.95})[0]


class _Tok:
    """A whitespace tokenizer: enough for the SFT batch's label layout."""

    pad_token_id, eos_token_id = 0, 1

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [2 + len(w) for w in text.split()]}


@pytest.mark.parametrize("rows", [1, 3])
def test_sft_batch_labels_the_completion_and_eos_only(rows):
    data = [{"prompt": "a bb", "completion": " ccc" + " d" * i} for i in range(rows)]
    b = sft_batch(_Tok(), data)
    for i in range(rows):
        labels = [x for x in b["labels"][i].tolist() if x != -100]
        assert labels == [5] + [3] * i + [1]  # completion tokens, then end of sequence
        assert int(b["attention_mask"][i].sum()) == 2 + len(labels)


def test_run_arm_trains_lora_from_a_lora_warm_start(arith_model, tmp_path):
    """A LoRA warm start folder (adapter + oarl_warmstart.json naming its base) is merged, then RL trains fresh
    LoRA adapters on top under bfloat16 autocast (a tiny model stands in for SmolLM2)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from oarl.lab.testbed.experiment import JsonlWriter, RLSettings, get_arm, run_arm
    from oarl.lab.testbed.lora_warmstart import load_warm_policy
    from oarl.lab.testbed.tasks import ArithConfig, ArithTask

    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    warm = tmp_path / "warm"
    get_peft_model(AutoModelForCausalLM.from_pretrained(arith_model), lora).save_pretrained(str(warm))
    (warm / "oarl_warmstart.json").write_text(json.dumps({"sft": {"model": str(arith_model)}}))
    merged, _ = load_warm_policy(warm)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert all(p.requires_grad for p in merged.parameters())  # merged: a plain model, every weight trains
    task = ArithTask(ArithConfig())
    rl = RLSettings(steps=1, prompts_per_step=2, num_generations=2, max_completion_length=8, eval_every=1)
    held_out, writer = task.problems(2, seed=30_000), JsonlWriter(tmp_path / "log.jsonl")
    out = run_arm(
        get_arm("grpo"),
        warm,
        task,
        rl,
        held_out,
        tmp_path,
        writer,
        progress=False,
        peft_config=lora,
        bf16=True,
    )
    assert out["steps"] == 1 and out["final/accuracy"] >= 0.0
