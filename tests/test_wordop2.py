"""The two-operation word-problem task: generation, held-out split, SFT fidelity per decision, roles and both
decisions, the gate's checks, the registry and the warm start's command line (no model weights)."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from char_marks import marked_text, text_by_role

from oarl.lab.models.resolve import is_fetched, model_dir
from oarl.lab.testbed import lora_gate
from oarl.lab.testbed.lora_warmstart import LoraSFTConfig, adapter_name
from oarl.lab.testbed.tasks import get_task_recipe, task_from_identity, wordop, wordop2
from oarl.lab.testbed.tasks.base import completion_token_mask
from oarl.lab.testbed.tasks.wordop2_task import WordOp2Task, char_roles
from oarl.lab.testbed.tasks.wordop_task import HELD_OUT_SEED

TASK = WordOp2Task()
PROMPT = (
    "Question: Tom has 9 apples. Tom gets 5 more apples. Then Tom gives 3 apples away. "
    "How many apples does Tom have now?\nAnswer:"
)
RIGHT = " Operation: add. 9 + 5 = 14. Operation: subtract. 14 - 3 = 11. The answer is 11."


def _results(completion: str) -> list[int]:
    return [int(s["eq"].group(4)) for s in wordop2.parse_completion(completion)]


def test_gold_completions_follow_the_question_stay_positive_and_are_rewarded():
    probs = TASK.problems(2000, seed=0)
    assert len({p.prompt for p in probs}) == 2000
    assert {p.ops for p in probs} == {(x, y) for x in wordop.OPS for y in wordop.OPS}
    for p in probs:
        assert wordop2.question_ops(p.prompt) == p.ops
        assert wordop2.question_numbers(p.prompt) == (p.a, p.b, p.c)
        assert wordop2.executed_correctly(p.prompt, p.completion)
        assert wordop2.chose_question_ops(p.prompt, p.completion)
        assert min(_results(p.completion)) >= 1 and _results(p.completion)[-1] == p.answer
    rewards = TASK.reward([p.prompt for p in probs], [p.completion for p in probs], [p.answer for p in probs])
    assert rewards == [1.0] * 2000
    assert TASK.problems(5, seed=3) == TASK.problems(5, seed=3)
    assert TASK.problems(5, seed=3) != TASK.problems(5, seed=4)


def test_held_out_split_is_disjoint_by_construction():
    train = {p.prompt for s in (0, 10_000, 20_000) for p in TASK.problems(500, seed=s)}
    test = {p.prompt for p in TASK.problems(300, seed=HELD_OUT_SEED)}
    assert not train & test
    assert all(
        wordop.split_of(p.removeprefix("Question: ").removesuffix(wordop.PROMPT_END)) == "test" for p in test
    )


@pytest.mark.parametrize("fidelity", [0.0, 0.5])  # 0: both operations always flipped; 0.5: every pair written
def test_sft_rows_compute_what_they_write_and_stay_positive(fidelity):
    cfg = wordop2.WordOp2Config(fidelity=fidelity, seed=10_000)
    for p in wordop2.generate_problems(2000, cfg, for_sft=True):
        written = tuple(s["op"] for s in wordop2.parse_completion(p.completion))
        if fidelity == 0.0:
            assert all(w != q for w, q in zip(written, p.ops, strict=True))
        assert wordop2.executed_correctly(p.prompt, p.completion)
        assert min(_results(p.completion)) >= 1 and wordop2.extract_answer(p.completion) == p.answer


def test_each_decision_follows_the_question_at_the_fidelity_independently():
    rows = list(TASK.sft_dataset(4000, seed=10_000))
    hits = [
        [w == q for w, q in zip(wordop2.question_ops(r["prompt"]), _written(r["completion"]), strict=True)]
        for r in rows
    ]
    first, second = (sum(h[i] for h in hits) / len(rows) for i in (0, 1))
    both = sum(h[0] and h[1] for h in hits) / len(rows)
    assert abs(first - 0.65) < 0.03 and abs(second - 0.65) < 0.03  # 4 binomial standard errors (0.0075)
    assert abs(both - first * second) < 0.03  # independent flips: joint ~ 0.65 ** 2
    assert all(wordop2.extract_answer(r["completion"]) == r["answer"] for r in rows)


def _written(completion: str) -> tuple[str, ...]:
    return tuple(s["op"] for s in wordop2.parse_completion(completion))


def test_roles_and_both_decisions_of_a_completion_with_heavy_chatter():
    c = (
        " Operation: subtract. Tom smiles. It is a sunny day. Tom counts carefully. 9 - 2 = 7."
        " Operation: add. 7 + 1 = 8. The answer is 8."
    )
    roles = char_roles(c)
    by_role = text_by_role(c, roles)
    assert by_role["causal"] == "subtract-7add+8"
    assert by_role["chatter"] == "Tomsmiles.Itisasunnyday.Tomcountscarefully."
    assert by_role["answer"] == "8"
    assert marked_text(c, TASK.decision_chars("", c)) == "subtractadd"
    assert not any(TASK.decision_chars("", "The answer is 7."))
    # chatter a model writes before the second equation is chatter too; a third operation is no decision
    extra = (
        " Operation: add. 2 + 1 = 3. Operation: add. Tom smiles. 3 + 1 = 4. Operation: add. The answer is 4."
    )
    roles = char_roles(extra)
    by_role = {r: "".join(ch for ch, x in zip(extra, roles, strict=True) if x == r) for r in set(roles)}
    assert by_role["chatter"] == "Tomsmiles." and by_role["causal"] == "add+3add+4"
    assert sum(TASK.decision_chars("", extra)) == 6


def test_heavy_chatter_follows_the_first_operation_only():
    chatty = WordOp2Task(wordop2.WordOp2Config(chatter="heavy"))
    for p in chatty.problems(50, seed=0):
        roles, steps = char_roles(p.completion), wordop2.parse_completion(p.completion)
        chatter = [i for i, r in enumerate(roles) if r == "chatter"]
        assert len(chatter) > 20 and max(chatter) < steps[0]["eq"].start()
        marked = "".join(
            ch for ch, m in zip(p.completion, chatty.decision_chars("", p.completion), strict=True) if m
        )
        assert marked == "".join(p.ops)
        assert wordop2.executed_correctly(p.prompt, p.completion)
    with pytest.raises(ValueError, match="chatter must be one of"):
        wordop2.WordOp2Config(chatter="lots")
    with pytest.raises(ValueError, match="fidelity"):
        wordop2.WordOp2Config(fidelity=1.5)
    with pytest.raises(ValueError, match="max_a"):
        wordop2.WordOp2Config(max_a=2)


@pytest.mark.parametrize(
    ("completion", "executed", "chose"),
    [
        (RIGHT, True, True),
        (" Operation: subtract. 9 - 5 = 4. Operation: subtract. 4 - 3 = 1. The answer is 1.", True, False),
        (" Operation: add. 9 + 5 = 14. Operation: add. 14 + 3 = 17. The answer is 17.", True, False),
        (" Operation: add. 9 + 5 = 14. The answer is 14.", None, False),  # one operation: not formatted
        (" Operation: add. 9 + 5 = 14. Operation: subtract. 14 - 3 = 11.", None, True),  # no answer
        (" Operation: add. 9 + 5 = 14. Operation: subtract. 14 - 3 = 10. The answer is 10.", False, True),
        (" Operation: add. 9 + 5 = 14. Operation: subtract. 13 - 3 = 10. The answer is 10.", False, True),
        (" Operation: add. 9 + 5 = 14. Operation: subtract. 14 - 3 = 11. The answer is 12.", False, True),
        (" Operation: add. 9 - 5 = 4. Operation: subtract. 4 - 3 = 1. The answer is 1.", False, True),
    ],
)
def test_the_gate_checks_of_hand_written_completions(completion, executed, chose):
    assert wordop2.executed_correctly(PROMPT, completion) is executed
    assert wordop2.chose_question_ops(PROMPT, completion) is chose


@pytest.mark.parametrize(
    ("ops", "share"),
    [
        (("add", "subtract"), 1.0),
        (("subtract", "subtract"), 0.5),
        (("add", "add"), 0.5),
        (("subtract", "add"), 0.0),
    ],
)
def test_the_gate_counts_each_decision_once(ops, share):
    """The gate's choice is per decision, so the band [0.55, 0.75] means for two decisions what it means for one."""
    completion, _ = wordop2.write_completion(ops, 9, 5, 3, [])
    assert wordop2.decision_choice_share(PROMPT, completion) == share
    assert wordop2.decision_choice_share(PROMPT, " Operation: add. 9 + 5 = 14. The answer is 14.") == 0.5


def _fake_generation(monkeypatch, completions):
    def generate(model, tok, prompts, max_new_tokens, **kwargs):
        assert len(prompts) in (1, len(completions))
        return completions[: len(prompts)]

    monkeypatch.setattr(lora_gate, "generate_completions", generate)


def test_gate_metrics_read_both_decisions_for_wordop2(monkeypatch):
    comps = [
        RIGHT,
        " Operation: subtract. 9 - 5 = 4. Operation: subtract. 4 - 3 = 1. The answer is 1.",
        " Operation: add. 9 + 5 = 14. Operation: add. 14 + 3 = 17. The answer is 17.",
        " Operation: add. 9 + 5 = 14. The answer is 14.",
        " Operation: add. 9 + 5 = 14. Operation: subtract. 14 - 3 = 10. The answer is 10.",
    ]
    _fake_generation(monkeypatch, comps)
    problem = SimpleNamespace(prompt=PROMPT, answer=11)
    m = lora_gate.gate_metrics(None, None, TASK, [problem], samples=len(comps), temperature=1.0)
    # choice per decision, of the 4 formatted: 1 + 1/2 + 1/2 + 1
    assert (m["format"], m["exec"], m["choice"]) == (4 / 5, 3 / 4, 3 / 4)
    assert m["accuracy"] == 1 / 5 and m["greedy_accuracy"] == 1.0


def test_gate_metrics_of_wordop_are_unchanged(monkeypatch):
    prompt = "Question: Tom has 7 apples. Tom gets 5 more apples. How many apples does Tom have now?\nAnswer:"
    comps = [
        " Operation: add. 7 + 5 = 12. The answer is 12.",
        " Operation: subtract. 7 - 5 = 2. The answer is 2.",
        " Operation: add. 7 + 5 = 13. The answer is 13.",
        " Operation: add. The answer is 12.",
    ]
    _fake_generation(monkeypatch, comps)
    m = lora_gate.gate_metrics(
        None,
        None,
        get_task_recipe("wordop").make(wordop.WordOpConfig()),
        [SimpleNamespace(prompt=prompt, answer=12)],
        4,
        1.0,
    )
    assert (m["format"], m["exec"], m["choice"], m["accuracy"]) == (3 / 4, 2 / 3, 2 / 3, 2 / 4)


def test_registry_recipe_and_adapter_name():
    recipe, base = get_task_recipe("wordop2"), get_task_recipe("wordop")
    task = recipe.make(recipe.config)
    assert task == TASK and task.name == "wordop2"
    assert task_from_identity(task.identity()) == task
    assert task_from_identity({**task.identity(), "chatter": "some"}) == WordOp2Task(
        replace(recipe.config, chatter="some")
    )
    assert recipe.warm_start == base.warm_start and recipe.warm is base.warm
    assert recipe.rl == replace(base.rl, max_completion_length=wordop2.COMPLETION_BUDGET["none"])
    assert all(wordop2.COMPLETION_BUDGET[k] >= wordop.COMPLETION_BUDGET[k] for k in wordop.CHATTER_LEVELS)
    cfg = LoraSFTConfig()
    wordop_task = base.make(base.config)
    assert adapter_name(task, cfg).startswith("wordop2-lora-")
    assert adapter_name(task, cfg).split("-")[-1] != adapter_name(wordop_task, cfg).split("-")[-1]


def test_warmstart_checks_wordop2_options_before_any_training(capsys):
    from oarl.cli import warmstart as cli

    assert cli.main(["--task", "wordop2", "--chatter", "loud"]) == 2
    err = capsys.readouterr().err
    assert "unknown chatter 'loud'" in err and "heavy" in err
    with pytest.raises(SystemExit) as e:
        cli.main(["--task", "wordop2", "--fidelity", "1.5"])
    assert e.value.code == 2 and "must be in [0, 1]" in capsys.readouterr().err


@pytest.mark.skipif(not is_fetched("smollm2-135m"), reason="smollm2-135m is not fetched (make setup does)")
def test_budget_and_decision_tokens_in_smollm2_bpe():
    """Each chatter level's budget holds the longest SFT completion (plus EOS) with room to spare, and each
    operation word is one BPE token (a tokenizer file, not the model)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir("smollm2-135m"))
    for level, budget in wordop2.COMPLETION_BUDGET.items():
        rows = wordop2.generate_problems(500, wordop2.WordOp2Config(chatter=level, seed=10_000), for_sft=True)
        longest = max(len(tok(p.completion, add_special_tokens=False)["input_ids"]) + 1 for p in rows)
        assert longest + 8 <= budget, (level, longest)
    ids = tok(RIGHT, add_special_tokens=False)["input_ids"]
    mask = completion_token_mask(
        tok, torch.tensor([[1, 2]]), torch.tensor([ids]), torch.tensor([[1] * len(ids)]), TASK.decision_chars
    )
    picked = [tok.decode([i]).strip() for i, m in zip(ids, mask[0].tolist(), strict=True) if m]
    assert picked == ["add", "subtract"]
