"""A testbed checkpoint loads with the standard API (``AutoTokenizer`` / ``AutoModelForCausalLM``) and gives the
same ids and logits as the objects that wrote it: what TRL, vLLM and every user script do."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from oarl.lab.testbed import tiny_model
from oarl.lab.testbed.tasks import arith
from oarl.utils.checkpoint import load_tokenizer


def _save(tmp_path):
    tok = tiny_model.build_tokenizer()
    model = tiny_model.build_tiny_model(
        tok, hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64
    ).eval()
    model.save_pretrained(tmp_path)  # what the warm start writes
    tok.save_pretrained(tmp_path)
    return tok, model


def test_auto_classes_round_trip(tmp_path):
    tok, model = _save(tmp_path)
    auto_tok = AutoTokenizer.from_pretrained(tmp_path)
    auto_model = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    problems = arith.generate_problems(20, arith.ArithConfig(seed=3))
    texts = [p.prompt + p.completion for p in problems] + ["a=1;?a\n  a=1; ANSWER 1", "x~y\n"]
    for text in texts:  # newlines, spaces, ANSWER and unknown characters all survive
        assert auto_tok(text)["input_ids"] == tok(text)["input_ids"], text
        assert auto_tok.decode(auto_tok(text)["input_ids"]) == tok.decode(tok(text)["input_ids"])
    assert auto_tok.pad_token_id == tok.pad_token_id and auto_tok.eos_token_id == tok.eos_token_id
    ids = torch.tensor([tok(texts[0])["input_ids"]])
    with torch.no_grad():  # same weights, same graph: equal up to float rounding
        torch.testing.assert_close(auto_model(ids).logits, model(ids).logits, rtol=1e-5, atol=1e-5)


def test_load_tokenizer_matches_auto_tokenizer(tmp_path):
    tok, _ = _save(tmp_path)
    text = "a=8;b=7;c=a+b;?c\nc=15;ANSWER 15"
    assert (
        load_tokenizer(tmp_path)(text)["input_ids"]
        == AutoTokenizer.from_pretrained(tmp_path)(text)["input_ids"]
    )
