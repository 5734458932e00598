"""The held-out gate a LoRA warm start of a word-problem task (wordop, wordop2) must pass before it ships.

``oarl warmstart --task wordop --ship`` trains the adapter (:mod:`oarl.lab.testbed.lora_warmstart`), measures
:func:`gate_metrics` on held-out problems and ships it only when :func:`gate_failures` is empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from oarl.lab.math.evaluation import generate_completions

#: The held-out gate (sampled at the RL temperature): format, execution given the chosen operation, and the
#: share of right choices inside a band (RL needs something left to learn, and something to start from). The
#: choice is per decision: wordop2's two decisions each count half, so SFT data at fidelity 0.65 aims at 0.65
#: there too (both right would aim at 0.65 ** 2 ~ 0.42).
GATE = {"format": 0.95, "exec": 0.90, "choice_min": 0.55, "choice_max": 0.75}


@torch.no_grad()
def gate_metrics(
    model,
    tok,
    task,
    problems: Sequence,
    samples: int,
    temperature: float,
    max_new_tokens: int = 32,
    seed: int = 0,
) -> dict[str, float]:
    """Held-out sampled metrics the gate reads: ``format`` (each operation, its equation and the answer present),
    ``exec`` (computes the operations it chose, of the formatted), ``choice`` (the share of decisions that are the
    operation the question's words name, of the formatted), ``accuracy`` (reward) and greedy ``greedy_accuracy``. ``task``
    is a word task (:class:`~oarl.lab.testbed.tasks.wordop_task.WordOpTask`: its ``executed`` and ``choice_share``
    are what the gate reads of one prompt and completion)."""
    prompts = [p.prompt for p in problems for _ in range(samples)]
    answers = [p.answer for p in problems for _ in range(samples)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        comps = generate_completions(
            model, tok, prompts, max_new_tokens, do_sample=True, temperature=temperature
        )
    greedy = generate_completions(model, tok, [p.prompt for p in problems], max_new_tokens)
    ok = [task.executed(p, c) for p, c in zip(prompts, comps, strict=True)]
    fmt = [i for i, x in enumerate(ok) if x is not None]
    choice = [task.choice_share(prompts[i], comps[i]) for i in fmt]
    return {
        "format": len(fmt) / len(comps),
        "exec": sum(bool(ok[i]) for i in fmt) / max(1, len(fmt)),
        "choice": sum(choice) / max(1, len(fmt)),
        "accuracy": sum(task.reward(prompts, comps, answers)) / len(comps),
        "greedy_accuracy": sum(
            task.reward([p.prompt for p in problems], greedy, [p.answer for p in problems])
        )
        / len(problems),
        "samples": len(comps),
        "temperature": temperature,
    }


def gate_failures(m: dict[str, float], gate: dict[str, float] = GATE) -> list[str]:
    """Why the metrics miss the gate (empty when they pass)."""
    out = []
    if m["format"] < gate["format"]:
        out.append(f"format {m['format']:.3f} < {gate['format']}")
    if m["exec"] < gate["exec"]:
        out.append(f"exec {m['exec']:.3f} < {gate['exec']}")
    if not gate["choice_min"] <= m["choice"] <= gate["choice_max"]:
        out.append(f"choice {m['choice']:.3f} outside [{gate['choice_min']}, {gate['choice_max']}]")
    return out
