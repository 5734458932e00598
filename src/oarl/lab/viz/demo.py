"""The demo's attribution strip: every scorer's token weights on one completion of the warm model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oarl.batch import credit
from oarl.batch.rollout_layout import LAYOUT_KEYS
from oarl.batch.settings import OARSettings, method_label
from oarl.core.layout import Layout
from oarl.lab.math.evaluation import generate_completions
from oarl.lab.testbed import oracle
from oarl.lab.testbed.experiment import load_policy
from oarl.lab.viz import plots


def attribution_strip(ckpt: str | Path, task: Any, rl: Any, path: Path) -> None:
    """Token weights of every scorer on one sampled, chatter-laden completion of the warm model, scored and
    gated with ``rl.oar`` (probe, noise, tau, beta, floor), drawn as a strip at ``path``."""
    import torch

    model, tok = load_policy(ckpt)
    problems = task.problems(16, seed=40_000)
    prompts = [p.prompt for p in problems]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        comps = generate_completions(model, tok, prompts, rl.max_completion_length, do_sample=True)
    rewards = task.reward(prompts, comps, [p.answer for p in problems])
    pick = max(
        range(len(comps)), key=lambda i: (rewards[i], task.char_roles(prompts[i], comps[i]).count("chatter"))
    )
    batch = oracle.oracle_batch(tok, [prompts[pick]], [comps[pick]], task)
    keep = batch["attention_mask"][0].bool()
    # each token's own text (byte-level BPE's Ġ / Ċ become a space / newline), which the strip's labels show
    tokens = [
        tok.convert_tokens_to_string([t])
        for t in tok.convert_ids_to_tokens(batch["input_ids"][0][keep].tolist())
    ]
    layout = Layout(*(batch[k] for k in LAYOUT_KEYS))
    oar = rl.oar
    shared = {
        "probe": oar.probe,
        "noise_std": oar.noise_std,
        "tau": oar.tau,
        "beta": oar.beta,
        "floor": oar.floor,
    }
    weights = {}
    for m in ("perturbation", "gradient", "entropy", "random"):
        settings = OARSettings(method=m, **shared)
        got = credit.score_and_gate(model, layout, settings, generator=torch.Generator().manual_seed(0))
        weights[method_label(m)] = got.weights[0][keep].tolist()
    plots.attribution_strip(
        tokens,
        weights,
        path,
        oracle=batch["oracle_mask"][0][keep].tolist(),
        answer=batch["answer_mask"][0][keep].tolist(),
    )
