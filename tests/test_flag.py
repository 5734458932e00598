"""The flag task: deterministic problems, gold answers under the flag rule, SFT fidelity, per-character roles
(causal decisions, chatter) on gold and model-written completions, and the oracle decision tokens."""

from __future__ import annotations

import pytest

from oarl.lab.testbed.tasks import flag, flag_labels
from oarl.lab.testbed.tasks.flag_task import FlagTask


def test_problems_are_deterministic_and_gold_answers_follow_the_flags():
    cfg = flag.FlagConfig(decisions=2, chatter="some", seed=5)
    a, b = flag.generate_problems(30, cfg), flag.generate_problems(30, cfg)
    assert [p.prompt for p in a] == [p.prompt for p in b] and [p.completion for p in a] == [
        p.completion for p in b
    ]
    for p in a:
        assert flag_labels.gold_answer(p.prompt, cfg.modulus) == p.answer
        assert flag.flag_reward([p.prompt], [p.completion], [p.answer]) == [1.0]


def test_sft_data_follows_the_flag_with_the_given_fidelity():
    cfg = flag.FlagConfig(decisions=1, fidelity=0.7, seed=1)
    probs = flag.generate_problems(2000, cfg, for_sft=True)
    follow = sum(p.answer == flag_labels.gold_answer(p.prompt, cfg.modulus) for p in probs) / len(probs)
    assert follow == pytest.approx(0.7, abs=0.04)  # 2000 Bernoulli(0.7) draws: sd 0.01


@pytest.mark.parametrize("chatter", ["none", "some", "heavy"])
def test_roles_of_gold_completions(chatter):
    task = FlagTask(flag.FlagConfig(decisions=2, chatter=chatter, seed=3))
    for p in task.problems(20, seed=0):
        roles = task.char_roles(p.prompt, p.completion)
        assert len(roles) == len(p.completion)
        decisions = [i for i, d in enumerate(task.decision_chars(p.prompt, p.completion)) if d]
        assert len(decisions) == 2 and all(
            p.completion[i] in "+-" and roles[i] == "causal" for i in decisions
        )
        chat = [c for c, r in zip(p.completion, roles, strict=True) if r == "chatter"]
        assert (len(chat) > 0) == (chatter != "none")
        assert all(c in flag.CHATTER_CHARS["letters"] for c in chat)
        answer = "".join(c for c, r in zip(p.completion, roles, strict=True) if r == "answer")
        assert answer == str(p.answer)


def test_roles_of_model_written_text_never_fail():
    task = FlagTask(flag.FlagConfig(decisions=1, chatter="some"))
    p = task.problems(1, seed=0)[0]
    for text in [
        "",
        "garbage;;==",
        p.completion[:7],
        p.completion.replace("=", "", 1),
        "ANSWER",
        "c=a+b; q r;=x;",
    ]:
        assert len(task.char_roles(p.prompt, text)) == len(text)
        assert len(task.decision_chars(p.prompt, text)) == len(text)
