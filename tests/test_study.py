"""The study machinery end to end on a tiny warm start: arms (oracle and TRL's entropy mask included), labels,
resume, the results JSON and its figures."""

from __future__ import annotations

import json

import pytest
import torch

from oarl.batch.settings import OARSettings
from oarl.lab.testbed import tiny_model
from oarl.lab.testbed.experiment import ARMS, RLSettings, get_arm
from oarl.lab.testbed.report import summarize
from oarl.lab.testbed.study import Condition, StudyPlan, finished, run_study
from oarl.lab.testbed.tasks import arith
from oarl.lab.testbed.tasks.arith_task import ArithTask
from oarl.lab.testbed.tasks.base import completion_token_mask, token_roles
from oarl.lab.testbed.warmstart import WarmStartConfig, warm_start

TINY_WS = WarmStartConfig(
    train_problems=64, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_steps=4
)
TINY_RL = RLSettings(
    steps=2,
    prompts_per_step=2,
    num_generations=4,
    max_completion_length=24,
    eval_every=1,
    eval_samples=2,
    oar=OARSettings(noise_std=0.1),
)


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    task = ArithTask()
    return task, str(warm_start(task, TINY_WS, tmp_path_factory.mktemp("cache"), progress=False))


def test_every_registered_scorer_is_an_arm():
    from oarl.core.scorers import SCORERS

    for name in SCORERS:
        assert get_arm(name).oar_method == name
    assert get_arm("trl_entropy").trl_fields == (("top_entropy_quantile", 0.2),)
    with pytest.raises(ValueError, match="unknown arm"):
        get_arm("magic")


def test_decision_mask_follows_the_task_labels():
    task = ArithTask()
    tok = tiny_model.build_tokenizer()
    p = arith.generate_problems(1, arith.ArithConfig(seed=1))[0]
    prompt = tok([p.prompt], return_tensors="pt", add_special_tokens=False)
    comp = tok([p.completion], return_tensors="pt", add_special_tokens=False)
    mask = completion_token_mask(
        tok, prompt.input_ids, comp.input_ids, comp.attention_mask, task.decision_chars
    )
    want = task.decision_chars(p.prompt, p.completion)
    pieces = [tok.decode([i]) for i in comp.input_ids[0].tolist()]  # one char per token but ANSWER
    got = [c for piece, m in zip(pieces, mask[0].tolist(), strict=True) for c in [m] * len(piece)]
    assert got == want and any(want)
    roles = token_roles(tok, p.prompt, comp.input_ids[0].tolist(), task)
    assert roles.count("causal") == int(mask.sum()) and roles[-1] == "answer"


def test_study_runs_resumes_and_reports(warm, tmp_path):
    task, ckpt = warm
    plan = StudyPlan(
        conditions=[
            Condition("plain", task),
            Condition("tau=0.6,beta=1", task, (("tau", 0.6), ("beta", 1.0))),
        ],
        arms=["grpo", "oracle", "trl_entropy"],
        seeds=[0, 1],
        rl=TINY_RL,
        eval_problems=4,
        checkpoints={"plain": ckpt, "tau=0.6,beta=1": ckpt},
    )
    out = tmp_path / "study"
    done = run_study(plan, out, workers=1)
    assert len(done) == 12 and set(done) == {s.key for s in plan.runs()}
    rec = done["plain__oracle__seed1"]
    # Exact: tau is a setting passed through unchanged (no arithmetic), 0.4 and 0.6 are the literals given.
    assert rec["steps"] == 2 and rec["method"] == "oracle" and rec["rl"]["oar"]["tau"] == 0.4
    assert done["tau=0.6,beta=1__grpo__seed0"]["rl"]["oar"]["tau"] == 0.6
    lines = [json.loads(x) for x in (out / "runs" / "plain__grpo__seed0.jsonl").read_text().splitlines()]
    evals = [r for r in lines if "accuracy" in r]
    assert [r["step"] for r in evals] == [0, 1, 2] and any(k.startswith("entropy/") for k in evals[0])
    # Resume: a finished study runs nothing more.
    assert run_study(plan, out, workers=1) == finished(out)  # exact: both read the same finished records
    res = summarize(out, finished(out))
    plain = res["conditions"]["plain"]
    assert set(plain["arms"]) == {"grpo", "oracle", "trl_entropy"}
    assert plain["arms"]["grpo"]["final_sampled"]["n"] == 2
    assert set(plain["paired"]) == {"oracle", "trl_entropy"}
    assert plain["paired"]["oracle"]["auc_sampled"]["n"] == 2
    fewer = StudyPlan(plan.conditions, ["grpo", "oracle"], [1], TINY_RL, 4, plan.checkpoints)
    assert set(fewer.finished_in(out)) == {r.key for r in fewer.runs()} and len(fewer.runs()) == 4
    # Each summary carries its evaluation curve: without the run logs the results are the same.
    assert done["plain__grpo__seed0"]["curve"] == evals
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(out / "summaries.jsonl", bare / "summaries.jsonl")
    assert summarize(bare, finished(bare))["conditions"] == res["conditions"]
    from oarl.lab.viz.study import learning_curves, role_entropy_curves, sweep_heatmaps

    assert learning_curves(res, tmp_path / "c.png").stat().st_size > 0
    assert role_entropy_curves(res, tmp_path / "e.png").stat().st_size > 0
    panels = (("final_sampled", "acc"), ("policy_entropy", "H"))
    assert sweep_heatmaps(res, tmp_path / "h.png", [0.4, 0.6], [1.0, 2.0], panels).stat().st_size > 0


def test_oracle_arm_needs_labels(warm, tmp_path):
    from transformers import AutoModelForCausalLM

    from oarl.integrations.trl import OARConfig, OARGRPOTrainer
    from oarl.utils.checkpoint import load_tokenizer

    _, ckpt = warm
    args = OARConfig(
        output_dir=str(tmp_path),
        oar_method="oracle",
        use_cpu=True,
        report_to="none",
        per_device_train_batch_size=4,
        num_generations=4,
        max_steps=1,
    )
    with pytest.raises(ValueError, match="token_labeler"):
        OARGRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(ckpt),
            reward_funcs=arith.arith_reward,
            args=args,
            train_dataset=arith.make_dataset(8),
            processing_class=load_tokenizer(ckpt),
        )
    assert set(ARMS) >= {"grpo", "oar_g", "oar_p", "entropy", "trl_entropy", "random", "oracle"}
    assert torch.is_tensor(torch.zeros(1))
