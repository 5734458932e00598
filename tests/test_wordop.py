"""The word-problem task: generation, held-out split, reward through the span finder, oracle labels in BPE
tokens (SmolLM2's tokenizer when fetched: a tokenizer file, not the model), and the recipe's wiring."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from char_marks import marked_text, text_by_role

from oarl.batch.spans import find_answer_span
from oarl.lab.models.resolve import is_fetched, model_dir
from oarl.lab.testbed.tasks import get_task_recipe, task_from_identity, wordop
from oarl.lab.testbed.tasks.base import completion_token_mask, token_roles
from oarl.lab.testbed.tasks.wordop_task import HELD_OUT_SEED, WordOpTask, char_roles

TASK = WordOpTask()


def test_gold_completions_follow_the_question_and_are_rewarded():
    probs = TASK.problems(200, seed=0)
    assert len({p.prompt for p in probs}) == 200
    assert {p.op for p in probs} == {"add", "subtract"}
    for p in probs:
        assert wordop.question_op(p.prompt) == p.op
        assert wordop.parse_completion(p.completion)["op"] == p.op
        assert wordop.executed_correctly(p.prompt, p.completion)
        assert 0 < p.answer <= 2 * TASK.config.max_a
    rewards = TASK.reward([p.prompt for p in probs], [p.completion for p in probs], [p.answer for p in probs])
    assert rewards == [1.0] * 200
    assert TASK.problems(5, seed=3) == TASK.problems(5, seed=3)


def test_sft_data_follows_the_question_at_the_fidelity_and_always_computes():
    rows = list(TASK.sft_dataset(2000, seed=10_000))
    follows = [
        wordop.question_op(r["prompt"]) == wordop.parse_completion(r["completion"])["op"] for r in rows
    ]
    assert 0.60 < sum(follows) / len(rows) < 0.70  # fidelity 0.65
    assert all(wordop.executed_correctly(r["prompt"], r["completion"]) for r in rows)
    assert all(wordop.extract_answer(r["completion"]) == r["answer"] for r in rows)


def test_held_out_split_is_disjoint_by_construction():
    train = {p.prompt for s in (0, 10_000, 20_000) for p in TASK.problems(500, seed=s)}
    test = {p.prompt for p in TASK.problems(300, seed=HELD_OUT_SEED)}
    assert not train & test
    assert all(
        wordop.split_of(p.removeprefix("Question: ").removesuffix(wordop.PROMPT_END)) == "test" for p in test
    )


def test_reward_reads_the_span_the_span_finder_finds():
    c = " Operation: add. 3 + 4 = 7. The answer is 7."
    s, e = find_answer_span(c, wordop.ANSWER_FINDERS)
    assert c[s:e] == "7"
    assert TASK.reward(
        [""] * 4, [c, c.replace("is 7", "is 8"), " Operation: add. 3 + 4 = 7.", ""], [7] * 4
    ) == [
        1.0,
        0.0,
        0.0,
        0.0,
    ]
    # a wrong operation computed right: rewarded by the answer only, but it "executes correctly"
    wrong = " Operation: subtract. 3 - 4 = -1. The answer is -1."
    assert wordop.executed_correctly("Question: Tom has 3 apples. Tom gets 4 more apples.", wrong)
    assert not wordop.executed_correctly(
        "Question: Tom has 3 apples.", " Operation: add. 3 + 4 = 8. The answer is 8."
    )
    assert wordop.executed_correctly("", "no format") is None
    # the gate reads the same checks through the task: a wrong operation executed right is not a right choice
    q = "Question: Tom has 3 apples. Tom gets 4 more apples."
    assert TASK.executed(q, wrong) and TASK.choice_share(q, wrong) == 0
    assert TASK.choice_share(q, " Operation: add. 3 + 4 = 7. The answer is 7.") == 1


def test_roles_and_decision_chars_of_a_model_written_completion_with_chatter():
    c = " Operation: subtract. Tom smiles. 9 - 2 = 7. The answer is 7."
    roles = char_roles(c)
    by_role = text_by_role(c, roles)
    assert by_role["causal"] == "subtract-7"
    assert by_role["chatter"] == "Tomsmiles."
    assert by_role["answer"] == "7"
    assert marked_text(c, TASK.decision_chars("", c)) == "subtract"
    assert not any(TASK.decision_chars("", "The answer is 7."))


def test_chatter_knob_adds_sentences_the_answer_never_reads():
    chatty = WordOpTask(wordop.WordOpConfig(chatter="heavy"))
    for p in chatty.problems(20, seed=0):
        assert char_roles(p.completion).count("chatter") > 10
        assert wordop.executed_correctly(p.prompt, p.completion)
    with pytest.raises(ValueError, match="chatter must be one of"):
        wordop.WordOpConfig(chatter="lots")
    with pytest.raises(ValueError, match="fidelity"):
        wordop.WordOpConfig(fidelity=1.5)


def test_recipe_and_identity_round_trip():
    recipe = get_task_recipe("wordop")
    task = recipe.make(recipe.config)
    assert task_from_identity(task.identity()) == task
    other = task_from_identity({**task.identity(), "chatter": "some"})
    assert other == WordOpTask(replace(recipe.config, chatter="some"))


@pytest.mark.skipif(not is_fetched("smollm2-135m"), reason="smollm2-135m is not fetched (make setup does)")
def test_decision_tokens_in_smollm2_bpe():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir("smollm2-135m"))
    p = TASK.problems(1, seed=0)[0]
    for comp in (p.completion, " Operation: add. Lily likes cards. 2 + 5 = 7. The answer is 7."):
        ids = tok(comp, add_special_tokens=False)["input_ids"]
        c_ids = torch.tensor([ids + [tok.pad_token_id]])
        mask = completion_token_mask(
            tok, torch.tensor([[1, 2]]), c_ids, torch.tensor([[1] * len(ids) + [0]]), TASK.decision_chars
        )
        picked = [tok.decode([i]) for i, m in zip(ids, mask[0].tolist(), strict=False) if m]
        assert [s.strip() for s in picked] == [wordop.parse_completion(comp)["op"]]  # one BPE token
        roles = token_roles(tok, "", ids, TASK)
        assert "answer" in roles and roles.count("causal") >= 3
