"""``oarl eval`` picks vLLM where it imports and a GPU is present (else transformers, as before), and its vLLM
path hands vLLM the exact prompt tokens and sampling settings (checked with a stand-in ``vllm`` module)."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from oarl.cli import eval_cmd


@pytest.mark.parametrize(
    ("choice", "has_vllm", "gpu", "expected"),
    [("auto", True, True, "vllm"), ("auto", True, False, "hf"), ("auto", False, True, "hf"), ("hf", True, True, "hf"),
     ("vllm", True, True, "vllm")],
)  # fmt: skip
def test_backend_choice(monkeypatch, choice, has_vllm, gpu, expected):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda n, *a: object() if n == "vllm" and has_vllm else (None if n == "vllm" else real(n, *a)),
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert eval_cmd._backend(choice) == expected


def test_forced_vllm_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="vllm.*CUDA GPU"):
        eval_cmd._backend("vllm")


def test_vllm_path_passes_prompt_tokens_and_sampling(monkeypatch):
    seen = {}

    class SamplingParams:
        def __init__(self, **kw):
            seen["params"] = kw

    class LLM:
        def __init__(self, **kw):
            seen["llm"] = kw

        def generate(self, prompts, params, use_tqdm=False):
            seen["prompts"] = prompts
            n = seen["params"]["n"]
            out = types.SimpleNamespace
            return [out(outputs=[out(text=f"c{i}.{j}") for j in range(n)]) for i in range(len(prompts))]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "a": 1, "b": 2, "?": 3}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[PAD]"))
    raw.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="[PAD]")
    args = eval_cmd.EvalArguments(
        model="/m", data="arith", n=3, k="1,3", temperature=0.6, max_new_tokens=7, seed=5
    )
    outs = eval_cmd._generate_vllm(args, tok, ["ab?", "b?"], add_special_tokens=False)
    assert outs == [["c0.0", "c0.1", "c0.2"], ["c1.0", "c1.1", "c1.2"]]
    assert seen["prompts"] == [{"prompt_token_ids": [1, 2, 3]}, {"prompt_token_ids": [2, 3]}]
    assert seen["params"] == {"n": 3, "temperature": 0.6, "top_p": 0.95, "max_tokens": 7, "seed": 5}
    assert seen["llm"]["model"] == "/m" and seen["llm"]["seed"] == 5
