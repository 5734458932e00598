"""Tests for the synthetic arithmetic task, its tokenizer, rewards and tiny model."""

from __future__ import annotations

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oarl.lab.testbed.tasks.arith import (
    ANSWER_MARKER,
    ArithConfig,
    arith_reward,
    char_spans_to_token_mask,
    dependency_path,
    extract_answer,
    generate_problems,
    make_dataset,
    oracle_char_spans_for,
)
from oarl.lab.testbed.tiny_model import ALPHABET, build_tiny_model, build_tokenizer

PROMPT = "a=3;b=7;c=a+b;d=b-2;e=c+4;?e\n"
GOLD = "c=10;d=5;e=14;ANSWER 14"


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def _interpret(prompt: str) -> tuple[dict[str, int], dict[str, set[str]], str]:
    """Independent reference interpreter: values, direct deps, query.  No eval."""
    body, query = prompt.rstrip("\n").rsplit(";?", 1)
    env: dict[str, int] = {}
    deps: dict[str, set[str]] = {}
    for stmt in body.split(";"):
        name, rhs = stmt.split("=")
        parts = re.split(r"([+\-*])", rhs)
        vals = [env[p] if p.isalpha() else int(p) for p in parts[::2]]
        deps[name] = {p for p in parts[::2] if p.isalpha()}
        if len(parts) == 1:
            env[name] = vals[0]
        else:
            op = parts[1]
            env[name] = (
                vals[0] + vals[1] if op == "+" else vals[0] - vals[1] if op == "-" else vals[0] * vals[1]
            )
    return env, deps, query


def _ancestors(deps: dict[str, set[str]], q: str) -> set[str]:
    out, todo = set(), [q]
    while todo:
        v = todo.pop()
        if v not in out:
            out.add(v)
            todo.extend(deps[v])
    return out


configs = st.builds(
    ArithConfig,
    chain_steps=st.integers(1, 5),
    distractor_steps=st.integers(0, 4),
    num_constants=st.integers(1, 4),
    ops=st.sampled_from([("+",), ("+", "-"), ("+", "-", "*")]),
    seed=st.integers(0, 10_000),
)


# ---------------------------------------------------------------- generator


def test_determinism_and_variety():
    cfg = ArithConfig(seed=3)
    a, b = generate_problems(50, cfg), generate_problems(50, cfg)
    assert a == b
    c = generate_problems(50, ArithConfig(seed=4))
    assert [p.prompt for p in a] != [p.prompt for p in c]
    assert len({p.prompt for p in a}) >= 45  # a seed does not repeat itself
    assert len({p.answer for p in generate_problems(300)}) >= 15  # answers use the 0..19 range


@settings(max_examples=40, deadline=None)
@given(cfg=configs)
def test_gold_completion_is_correct(cfg):
    for p in generate_problems(5, cfg):
        env, deps, query = _interpret(p.prompt)
        assert query == p.query and env[query] == p.answer
        assert all(0 <= v <= cfg.value_max for v in env.values())
        derived = [n for n in env if deps[n]]
        assert p.completion == "".join(f"{n}={env[n]};" for n in derived) + f"ANSWER {p.answer}"
        roles = {s.role for s in p.steps}
        assert roles <= {"const", "chain", "distractor"}
        assert sum(s.role == "distractor" for s in p.steps) == cfg.distractor_steps
        assert len(p.causal_vars) == cfg.chain_steps
        assert extract_answer(p.completion) == p.answer


@settings(max_examples=40, deadline=None)
@given(cfg=configs)
def test_oracle_spans_on_gold_are_exactly_the_dependency_path(cfg):
    for p in generate_problems(5, cfg):
        env, deps, query = _interpret(p.prompt)
        path = {n for n in _ancestors(deps, query) if deps[n]}  # derived ancestors (incl. query)
        assert set(p.causal_vars) == path
        assert set(dependency_path(p.prompt)) == path
        # Expected spans: the value text of each causal step in the gold completion.
        expected, pos = [], 0
        for n in (n for n in env if deps[n]):
            start = pos + len(n) + 1
            end = start + len(str(env[n]))
            if n in path:
                expected.append((start, end))
            pos = end + 1
        assert p.oracle_char_spans == expected
        assert all(p.completion[a:b] == str(env[p.completion[a - 2]]) for a, b in p.oracle_char_spans)
        reasoning_end = p.completion.index(ANSWER_MARKER)
        assert all(b <= reasoning_end for _, b in p.oracle_char_spans)


def test_oracle_spans_example_and_corrupted_completions():
    def texts(c):
        return [c[a:b] for a, b in oracle_char_spans_for(PROMPT, c)]

    assert dependency_path(PROMPT) == ["c", "e"]
    assert texts(GOLD) == ["10", "14"]  # d is a distractor
    assert texts("c=11;e=99;ANSWER 5") == ["11", "99"]  # wrong values, missing step
    assert texts("d=5;e=7;ANSWER 7") == ["7"]  # missing causal step
    assert texts("c=10e=14;ANSWER 14") == ["10", "14"]  # missing ';'
    assert texts("c=-3;c=4;") == ["-3", "4"]  # every occurrence counts, sign included
    assert texts("a=3;d=5;ANSWER c=10") == []  # constants and text after ANSWER are not oracle
    assert texts("ce=10;xe=4") == []  # multi-letter names are not variables
    assert texts("") == [] and oracle_char_spans_for("garbage", GOLD) == []


# ---------------------------------------------------------------- rewards


def test_reward_cases():
    comps = [
        GOLD,
        "c=10;e=14;ANSWER 15",
        "c=10;d=5;e=14;",  # no ANSWER
        "ANSWER abc",
        "ANSWER " + "9" * 5000,  # huge: must not raise (int() digit limit)
        "",
        "ANSWER14",
        "ANSWER 14;c=1;ANSWER 3",  # first marker wins
        "ANSWER -14",
    ]
    rewards = arith_reward([PROMPT] * len(comps), comps, answer=[14] * len(comps))
    assert rewards == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    assert extract_answer("ANSWER abc") is None and extract_answer("") is None
    assert extract_answer("x ANSWER 007") == 7
    # TRL conversational format and string answers from a dataset column.
    assert arith_reward([PROMPT], [[{"role": "assistant", "content": GOLD}]], answer=["14"]) == [1.0]


# ---------------------------------------------------------------- tokenizer


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), noise=st.text(alphabet=ALPHABET, max_size=20))
def test_tokenizer_roundtrip_and_offsets(tok, seed, noise):
    p = generate_problems(1, ArithConfig(seed=seed))[0]
    for text in (p.prompt + p.completion, noise + p.completion + noise):
        enc = tok(text, return_offsets_mapping=True, add_special_tokens=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == text
        toks = tok.convert_ids_to_tokens(ids)
        assert "".join(toks) == text  # no BOS/EOS added, pieces concatenate
        for t, (a, b) in zip(toks, offsets, strict=True):
            assert text[a:b] == t  # each offset points at exactly its own characters
    # Spans shift by len(prompt) when the prompt is prepended, and select exactly the digits.
    text = p.prompt + p.completion
    offsets = tok(text, return_offsets_mapping=True)["offset_mapping"]
    shifted = [(a + len(p.prompt), b + len(p.prompt)) for a, b in p.oracle_char_spans]
    mask = char_spans_to_token_mask(offsets, shifted)
    picked = "".join(text[a:b] for (a, b), m in zip(offsets, mask, strict=True) if m)
    assert picked == "".join(p.completion[a:b] for a, b in p.oracle_char_spans)


def test_tokenizer_vocab_and_specials(tok):
    assert len(tok) < 64
    assert tok.tokenize("ANSWER 14") == ["ANSWER", " ", "1", "4"]
    assert len(tok("ANSWER")["input_ids"]) == 1
    assert len({tok.pad_token_id, tok.eos_token_id, tok.bos_token_id, tok.unk_token_id}) == 4
    ids = tok("a=X;")["input_ids"]
    assert ids[2] == tok.unk_token_id and len(ids) == 4
    assert tok.decode(ids + [tok.eos_token_id, tok.pad_token_id], skip_special_tokens=True) == "a=;"
    assert tok.decode(tok("c=1 ;\n")["input_ids"]) == "c=1 ;\n"  # spaces kept, none inserted


def test_tokenizer_save_load(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = build_tokenizer(save_dir=str(tmp_path))
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    text = PROMPT + GOLD
    assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded.decode(loaded(text)["input_ids"]) == text
    assert (loaded.pad_token_id, loaded.eos_token_id) == (tok.pad_token_id, tok.eos_token_id)
    assert loaded(text, return_offsets_mapping=True)["offset_mapping"][-1] == (len(text) - 1, len(text))


# ---------------------------------------------------------------- model / dataset


def test_tiny_model_forward(tok):
    model = build_tiny_model(tok)
    n = sum(p.numel() for p in model.parameters())
    assert 0.5e6 <= n <= 5e6
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert model.config.pad_token_id == tok.pad_token_id and model.config.eos_token_id == tok.eos_token_id
    batch = tok([PROMPT + GOLD, PROMPT], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, labels=batch["input_ids"])
    assert out.logits.shape == (2, batch["input_ids"].shape[1], len(tok))
    assert torch.isfinite(out.loss)
    # Same seed, same weights: bit-exact, the same initialisation run twice from the same RNG state.
    other = build_tiny_model(tok)
    assert torch.equal(other.model.embed_tokens.weight, model.model.embed_tokens.weight)


def test_make_dataset():
    ds = make_dataset(20, ArithConfig(seed=1))
    assert ds.column_names == ["prompt", "completion", "answer"] and len(ds) == 20
    assert isinstance(ds[0]["answer"], int) and ds[0]["prompt"].endswith("\n")
    assert arith_reward(ds["prompt"], ds["completion"], answer=ds["answer"]) == [1.0] * 20


def test_config_validation():
    with pytest.raises(ValueError):
        ArithConfig(chain_steps=20, distractor_steps=10)
    with pytest.raises(ValueError):
        ArithConfig(ops=("/",))
    with pytest.raises(ValueError):
        ArithConfig(chain_steps=0)
