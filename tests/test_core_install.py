"""``pip install oarl`` without extras: the library trains and scores with the lab's packages absent, and a lab
command names the extra to install.

Each check runs in a fresh interpreter in which the lab's third-party packages cannot be imported (as if not
installed: ``import`` fails and ``importlib.util.find_spec`` finds nothing) and a ``sys.meta_path`` finder
refuses ``oarl.lab``. The tiny model and its tokenizer are built here, by the lab, and saved; the blocked
interpreter loads them from disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from conftest import single_thread

from oarl.lab import LAB_MODULES
from oarl.lab.math.rewards import MATH_MODULES
from oarl.lab.testbed import tiny_model
from oarl.lab.testbed.tasks import arith

#: The lab-only packages (import names) the blocked interpreter cannot import; the lab's others (datasets,
#: tokenizers, tqdm, yaml) come with trl / transformers, so a core install has them.
BLOCKED = sorted(
    {*LAB_MODULES, *MATH_MODULES, "tensorboard", "vllm"} - {"datasets", "tokenizers", "tqdm", "yaml"}
)
BLOCKER = f"""
import importlib.abc, sys
BLOCKED = {BLOCKED!r}
for name in BLOCKED:
    sys.modules[name] = None  # as if not installed: import raises ModuleNotFoundError, find_spec gives None

class NoLab(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "oarl.lab" or name.startswith("oarl.lab."):
            raise ModuleNotFoundError(f"{{name}} is blocked (a core install)", name=name)
        return None

sys.meta_path.insert(0, NoLab())
"""


def run_blocked(code: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    script = BLOCKER + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny model briefly supervised on the arithmetic task (it writes ``ANSWER x``), its tokenizer, and
    problems (prompt + gold completion), on disk."""
    out = tmp_path_factory.mktemp("core")
    tok = tiny_model.build_tokenizer()
    torch.manual_seed(0)
    model = tiny_model.build_tiny_model(tok, hidden_size=64, num_layers=2, intermediate_size=128)
    probs = arith.generate_problems(256, arith.ArithConfig(seed=1))
    enc = tok([p.prompt + p.completion + tok.eos_token for p in probs], padding=True, return_tensors="pt")
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    with single_thread():
        for step in range(60):
            idx = torch.arange(32) + (step * 32) % 224
            ids, am = enc.input_ids[idx], enc.attention_mask[idx]
            loss = model(input_ids=ids, attention_mask=am, labels=ids.masked_fill(am == 0, -100)).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    held = arith.generate_problems(16, arith.ArithConfig(seed=2))
    rows = [{"prompt": p.prompt, "completion": p.completion, "answer": p.answer} for p in held]
    (out / "problems.json").write_text(json.dumps(rows))
    return out


LIBRARY_RUN = """
import json, sys
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM

from oarl import OARConfig, OARGRPOTrainer
from oarl.batch.settings import OARSettings
from oarl.batch.rollout import Rollout
from oarl.batch.step import OARStep
from oarl.core.scorers import SCORERS
from oarl.utils.checkpoint import load_tokenizer

torch.set_num_threads(1)
root = Path(sys.argv[1])
tok = load_tokenizer(root / "model")
rows = json.loads((root / "problems.json").read_text())
out = {"trained": {}, "scored": {}}


def reward(completions, **kwargs):  # spread even for a barely trained model
    return [float(len(c) % 4) for c in completions]


for method in ("gradient", "perturbation"):  # OAR-G, OAR-P: one TRL step each
    model = AutoModelForCausalLM.from_pretrained(root / "model")
    before = [p.detach().clone() for p in model.parameters()]
    args = OARConfig(
        output_dir=str(root / method), oar_method=method, use_cpu=True, bf16=False, report_to="none",
        max_steps=1, per_device_train_batch_size=8, num_generations=4, max_completion_length=32,
        logging_steps=1, learning_rate=1e-3, gradient_checkpointing=False, save_strategy="no", seed=0,
        disable_tqdm=True, temperature=1.0,
    )
    data = Dataset.from_dict({"prompt": [r["prompt"] for r in rows]})
    trainer = OARGRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data,
                             processing_class=tok)
    trainer.train()
    log = [h for h in trainer.state.log_history if "loss" in h][0]
    moved = any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    out["trained"][method] = {"scored_frac": log["oar/scored_frac"], "moved": moved, "loss": log["loss"]}

# every scorer that runs the model, called directly on gold completions (each has an answer span)
model = AutoModelForCausalLM.from_pretrained(root / "model").eval()
batch = rows[:4]
prompt = tok([r["prompt"] for r in batch], return_tensors="pt", padding=True, padding_side="left")
comp = tok([r["completion"] for r in batch], return_tensors="pt", padding=True, padding_side="right")
advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])
rewards = torch.tensor([1.0, 0.0, 1.0, 0.0])


def row_reward(row, continuations):  # the resampling scorer's reward_fn: any float per continuation
    return [float(len(c) % 2) for c in continuations]


for name, spec in SCORERS.items():
    if "model" not in spec.needs:
        continue
    reference = model if "reference_model" in spec.needs else None  # prime: the policy as its own reference
    step = OARStep(OARSettings(method=name), seed=0, reference_model=reference)
    rollout = Rollout(
        prompt.input_ids, prompt.attention_mask, comp.input_ids, comp.attention_mask, advantages,
        rewards=rewards, num_generations=2, reward_fn=row_reward if "generation" in spec.needs else None,
    )
    adv, metrics = step(model, tok, rollout)
    ok = bool(torch.isfinite(adv).all()) and tuple(adv.shape) == tuple(comp.input_ids.shape)
    out["scored"][name] = {"ok": ok, "scored_frac": metrics["oar/scored_frac"],
                           "nonfinite": metrics["oar/nonfinite_fallback"]}

out["lab_imported"] = sorted(m for m in sys.modules if m.startswith("oarl.lab"))
out["blocked_imported"] = sorted(m for m in BLOCKED if sys.modules.get(m) is not None)
print("RESULT " + json.dumps(out))
"""


def test_the_library_trains_and_scores_without_the_lab(saved):
    """OARConfig, OARGRPOTrainer (one step of OAR-G and of OAR-P) and OARStep with every scorer that runs the
    model, in an interpreter where the lab and its packages cannot be imported."""
    done = run_blocked(LIBRARY_RUN, str(saved))
    assert done.returncode == 0, done.stderr[-4000:]
    (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    out = json.loads(line.removeprefix("RESULT "))
    assert out["lab_imported"] == [] and out["blocked_imported"] == []
    for method, res in out["trained"].items():
        assert res["scored_frac"] > 0 and res["moved"], (method, res)
    from oarl.core.scorers import SCORERS

    assert set(out["scored"]) == {n for n, s in SCORERS.items() if "model" in s.needs}
    for name, res in out["scored"].items():
        assert res["ok"] and res["scored_frac"] == 1.0 and res["nonfinite"] == 0, (name, res)


def test_a_lab_import_names_the_extra():
    """Without the lab's packages (``oarl.lab`` itself importable), importing the lab fails at once with the
    missing package and the pip line; the math rewards likewise name the math extra."""
    code = """
    sys.meta_path.pop(0)  # oarl.lab itself importable: its own check speaks
    from oarl.utils.extras import MissingExtra
    for module in ("oarl.lab.testbed.tasks", "oarl.lab.math.rewards"):
        try:
            __import__(module)
        except MissingExtra as e:
            print(module, "->", e)
    """
    done = run_blocked(code)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any("oarl.lab.testbed.tasks ->" in ln and 'pip install "oarl[lab]"' in ln for ln in lines)
    assert any("matplotlib" in ln for ln in lines)


def test_the_math_rewards_name_their_extra():
    """With the lab's packages present but not math-verify, the math rewards ask for ``oarl[math]``."""
    code = """
    from oarl.utils.extras import MissingExtra
    try:
        import oarl.lab.math.rewards
    except MissingExtra as e:
        print("MISSING", e)
    """
    blocker = 'import sys\nsys.modules["math_verify"] = None\n'
    done = subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(code)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "MISSING" in done.stdout and 'math-verify (the "math" extra): pip install "oarl[math]"' in done.stdout
    )


@pytest.mark.parametrize("argv", [["demo"], ["demo", "--help"], ["study", "--help"]])
def test_a_lab_command_without_the_lab_prints_the_pip_line_and_exits_2(argv):
    code = """
    sys.meta_path.pop(0)  # the package is installed, its extra is not
    from oarl.cli import main
    sys.exit(main(sys.argv[1:]))
    """
    start = time.perf_counter()
    done = run_blocked(code, *argv, timeout=120)
    seconds = time.perf_counter() - start
    assert done.returncode == 2, (done.stdout, done.stderr[-2000:])
    (line,) = done.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"oarl {argv[0]}: oarl.lab needs ") and line.endswith('pip install "oarl[lab]"')
    assert seconds < 60  # it fails before any run starts (the interpreter's start-up, beside other jobs)


def test_help_and_the_library_commands_work_without_the_lab():
    code = """
    from oarl.cli import main
    assert main(["--help"]) == 0 and main(["--version"]) == 0
    assert main(["scorers"]) == 0  # the registry table: library only
    assert not [m for m in sys.modules if m.startswith("oarl.lab")]
    """
    done = run_blocked(code, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "gradient" in done.stdout and 'pip install "oarl[lab]"' in done.stdout


def test_the_blocker_blocks():
    done = run_blocked("import matplotlib\n")
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr
    done = run_blocked("import oarl.lab.testbed\n")
    assert done.returncode != 0 and "blocked (a core install)" in done.stderr
