"""Shared fixtures: tiny causal LMs built from a config (never downloaded)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

PAD = 0

# Hypothesis, the same on every machine and every run: examples from a hash of the test (derandomize, so no
# counterexample shows up on one run and not the next; no .hypothesis database replaying old failures) and no
# per-example deadline (a loaded machine runs models slowly). OARL_HYPOTHESIS_PROFILE=default explores anew.
settings.register_profile(
    "oarl", derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("OARL_HYPOTHESIS_PROFILE", "oarl"))


@pytest.fixture(autouse=True)
def _torch_state_per_test() -> Iterator[None]:
    """Every test starts from the same torch global RNG (pytest-randomly reseeds only random and numpy, and the
    order is random) and leaves torch's thread count and default dtype as it found them."""
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    torch.manual_seed(0)
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    torch.set_default_dtype(dtype)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run a fixture's model fitting on one torch thread, then restore the count.

    One thread makes the fitted weights independent of the machine's core count (a different thread count
    sums in a different order), and on a shared, loaded machine it is much faster: a tiny model's ops are far
    too small for OpenMP, whose threads then wait on each other.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def tiny_lm(arch: str = "qwen2", vocab: int = 100, seed: int = 0, hidden: int = 32, layers: int = 2):
    """A 2-layer random causal LM (Qwen2 or Llama architecture) in float32."""
    torch.manual_seed(seed)
    kw = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=PAD,
    )
    model = Qwen2ForCausalLM(Qwen2Config(**kw)) if arch == "qwen2" else LlamaForCausalLM(LlamaConfig(**kw))
    return model.eval()


def layout(rows: list[tuple[int, int, int]], pad_side: str = "right", vocab: int = 100, seed: int = 0):
    """Build a padded batch from (prompt_len, reasoning_len, answer_len) per row.

    Returns input_ids, attention_mask, reasoning_mask, answer_mask (all [B, L]).
    """
    g = torch.Generator().manual_seed(seed)
    L = max(sum(r) for r in rows)
    B = len(rows)
    ids = torch.full((B, L), PAD, dtype=torch.long)
    am = torch.zeros(B, L, dtype=torch.long)
    rm = torch.zeros(B, L, dtype=torch.bool)
    an = torch.zeros(B, L, dtype=torch.bool)
    for b, (p, r, a) in enumerate(rows):
        n = p + r + a
        start = 0 if pad_side == "right" else L - n
        ids[b, start : start + n] = torch.randint(1, vocab, (n,), generator=g)
        am[b, start : start + n] = 1
        rm[b, start + p : start + p + r] = True
        an[b, start + p + r : start + n] = True
    return ids, am, rm, an


@pytest.fixture(scope="session")
def qwen():
    return tiny_lm("qwen2")


@pytest.fixture(scope="session")
def copy_task_model():
    """A tiny Qwen2 trained so one reasoning token provably decides the answer.

    Rows are ``[BOS, x1..x6, SEP, y]`` with ``y = x3``: the answer is a function of x3 alone, so the only
    causal reasoning token is at position 3. Returns (model, input_ids, attention_mask, reasoning_mask,
    answer_mask, causal_position).
    """
    bos, sep, lo, hi = 1, 2, 3, 13
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=16,
            hidden_size=48,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=32,
            pad_token_id=PAD,
        )
    )

    def batch(n: int, g: torch.Generator) -> torch.Tensor:
        x = torch.randint(lo, hi, (n, 6), generator=g)
        return torch.cat([torch.full((n, 1), bos), x, torch.full((n, 1), sep), x[:, 2:3]], dim=1)

    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    with single_thread():
        for _ in range(400):
            ids = batch(64, g)
            logits = model(input_ids=ids).logits
            loss = torch.nn.functional.cross_entropy(logits[:, -2], ids[:, -1])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    ids = batch(8, torch.Generator().manual_seed(1))
    with torch.no_grad():
        acc = (model(input_ids=ids).logits[:, -2].argmax(-1) == ids[:, -1]).float().mean().item()
    # Exact: 8 of 8 correct is an integer ratio.
    assert acc == 1.0, f"copy-task model failed to train (acc {acc})"
    am = torch.ones_like(ids)
    rm = torch.zeros_like(ids, dtype=torch.bool)
    rm[:, 1:7] = True
    an = torch.zeros_like(ids, dtype=torch.bool)
    an[:, -1] = True
    return model, ids, am, rm, an, 3


def has_benchmark_data() -> bool:
    """True when the local benchmark folder (``../shared/data`` or ``$OARL_DATA_DIR``) exists."""
    from oarl.lab.math.data import data_dir

    try:
        data_dir()
        return True
    except FileNotFoundError:
        return False


@pytest.fixture(scope="session")
def tiny_math_model(tmp_path_factory) -> Path:
    """A local model folder: byte-level BPE (ChatML template) trained on GSM8K text + a tiny random Qwen2,
    fitted for 40 steps on short ``... #### answer`` targets so that most sampled completions carry a
    ``####`` answer span (about 2/3; the answers themselves are nonsense). Built in ~5 s from the first
    1000 GSM8K train rows; skipped without the local data.
    """
    from oarl.lab.math.data import data_dir
    from oarl.lab.testbed.tiny_math import TinyMathConfig, build_tiny_math_checkpoint

    if not has_benchmark_data():
        pytest.skip("no local benchmark data (../shared/data)")
    subset = tmp_path_factory.mktemp("gsm8k_subset")
    with (data_dir() / "gsm8k_train.jsonl").open(encoding="utf-8") as f:
        lines = [next(f) for _ in range(1000)]
    (subset / "gsm8k_train.jsonl").write_text("".join(lines), encoding="utf-8")
    with single_thread():  # the fit is tiny; more threads only contend on a shared CI machine
        cfg = TinyMathConfig(fit_steps=40, fit_learning_rate=1e-2)
        return build_tiny_math_checkpoint(tmp_path_factory.mktemp("tiny_math"), cfg, data_dir=subset)


@pytest.fixture(scope="session")
def arith_model(tmp_path_factory):
    """A saved tiny arithmetic-task checkpoint (random weights, 1 layer): a model folder for CLI tests."""
    from oarl.lab.testbed import tiny_model

    d = tmp_path_factory.mktemp("arith")
    tok = tiny_model.build_tokenizer()
    tiny_model.build_tiny_model(
        tok, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64
    ).save_pretrained(d)
    tok.save_pretrained(d)
    return d
