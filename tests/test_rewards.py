"""Math rewards: answer extraction, math-verify grading, TRL's signature, timeouts, threads, real data."""

from __future__ import annotations

import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from markers import needs_data

from oarl.lab.math import mathcheck
from oarl.lab.math.rewards import (
    MathCheckWorker,
    check_answer,
    format_reward,
    make_math_reward,
    math_verify_reward,
)


@pytest.mark.parametrize(
    "completion, reference",
    [
        ("So she makes 9 * 2 = 18.\n#### 18", "18"),
        ("We get \\boxed{\\frac{1}{2}}.", "0.5"),
        ("Thus the answer is 1,000 dollars.", "1000"),
        ("#### $70,000", 70000),
        ("The final answer is $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$", "(3, \\frac{\\pi}{2})"),
        ("first \\boxed{3}, on reflection \\boxed{4}", "4"),  # the last answer counts
        ("c=10;e=14;ANSWER 14", "14"),  # the demo task's marker
        ("\\boxed{18 \\text{ dollars}}", "18"),
    ],
)
def test_correct_answers_score_one(completion, reference):
    verdict = check_answer(completion, reference)
    assert verdict.correct is True and verdict.reason == "correct"
    assert math_verify_reward(prompts=["q"], completions=[completion], answer=[reference]) == [1.0]


@pytest.mark.parametrize(
    "completion, reference, reason",
    [
        ("#### 17", "18", "wrong"),
        ("\\boxed{\\frac{1}{3}}", "0.5", "wrong"),
        ("I think it is 18 but I will not say it in the format.", "18", "no_answer"),
        ("\\boxed{x + 1}", "x - 1", "wrong"),
    ],
)
def test_wrong_or_missing_answers_score_zero(completion, reference, reason):
    assert check_answer(completion, reference).reason == reason
    assert math_verify_reward(completions=[completion], answer=[reference]) == [0.0]


def test_trl_signature_chat_completions_format_bonus_and_log_extra():
    logged = {}
    reward = make_math_reward(format_weight=0.25)
    out = reward(
        prompts=[[{"role": "user", "content": "q"}]] * 3,
        completions=[
            [{"role": "assistant", "content": "so \\boxed{2}"}],
            [{"role": "assistant", "content": "#### 5"}],
            [{"role": "assistant", "content": "no idea"}],
        ],
        completion_ids=[[1], [2], [3]],
        answer=["2", "4", "4"],
        trainer_state=None,
        log_extra=lambda column, values: logged.setdefault(column, values),
        log_metric=lambda name, value: None,
    )
    assert out == [1.25, 0.25, 0.0]
    assert logged["extracted_answer"] == ["2", "5", None]
    assert reward.__name__ == "math_verify_reward"
    assert format_reward(["#### 3", "nothing"]) == [1.0, 0.0]


def test_unparseable_reference_is_not_scored_and_bad_inputs_raise():
    assert math_verify_reward(completions=["\\boxed{1}"], answer=[""]) == [None]
    assert check_answer("no answer", " ").reason == "bad_reference"
    with pytest.raises(KeyError, match="answer"):
        math_verify_reward(completions=["\\boxed{1}"], solution=["1"])
    with pytest.raises(ValueError, match="references"):
        math_verify_reward(completions=["\\boxed{1}"], answer=["1", "2"])
    with pytest.raises(ValueError, match="timeout"):
        check_answer("\\boxed{1}", "1", timeout_seconds=0.5)


def test_model_text_is_never_evaluated(monkeypatch, tmp_path):
    """Code-like answers are graded as (wrong) math; sympy's eval-based parser sees number tokens only."""
    import re

    import math_verify.parser
    import sympy.parsing.sympy_parser as sp

    # Parses are memoised for the process: an answer another test parsed first would never reach the spy.
    mathcheck._parse_cached.cache_clear()
    seen: list[str] = []
    original = sp.parse_expr

    def spy(text, *args, **kwargs):
        seen.append(text)
        return original(text, *args, **kwargs)

    monkeypatch.setattr(sp, "parse_expr", spy)
    monkeypatch.setattr(math_verify.parser, "parse_expr", spy)  # its plain-expression path: never used
    marker = tmp_path / "pwned"
    evil = f"__import__('os').system('touch {marker}')"
    texts = [f"\\boxed{{{evil}}}", f"#### {evil}", "The answer is (lambda: 8)().", "#### 2**3"]
    for text in texts:
        assert check_answer(text, f"{len(text)}").correct is False
    assert check_answer("#### 1/2 + 3", "3.5").correct is True  # arithmetic still works, through LaTeX
    assert not marker.exists()
    assert seen and all(re.fullmatch(r"[0-9.]+", s) for s in seen), seen  # lexed number tokens only


def test_timeout_in_the_main_thread():
    start = time.perf_counter()
    verdict = check_answer("\\boxed{10^{10^{10}}}", "5", timeout_seconds=1)
    assert verdict.correct is False
    assert time.perf_counter() - start < 10


def test_off_the_main_thread_uses_a_worker_with_timeouts():
    def grade():
        assert threading.current_thread() is not threading.main_thread()
        return (
            math_verify_reward(completions=["#### 1,000", "\\boxed{7}", "none"], answer=["1000", "8", "1"]),
            check_answer("\\boxed{10^{10^{10}}}", "5", timeout_seconds=1),
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(1) as pool:
        rewards, slow = pool.submit(grade).result(timeout=60)
    assert rewards == [1.0, 0.0, 0.0]
    assert slow.correct is False
    assert time.perf_counter() - start < 30


def test_a_hung_worker_is_killed_and_replaced():
    worker = MathCheckWorker(command=[sys.executable, "-c", "import time; time.sleep(60)"], hard_timeout=0.5)
    start = time.perf_counter()
    assert worker.match("1", "1", 1) == "timeout"
    assert time.perf_counter() - start < 5 and worker._proc is None
    worker.command = [sys.executable, "-c", "import sys; sys.exit(0)"]  # dies at once: also "timeout"
    assert worker.match("1", "1", 1) == "timeout"
    worker.close()


def test_normalize_answer():
    assert mathcheck.normalize_answer("$18.") == "18"
    assert mathcheck.normalize_answer("18 dollars") == "18"
    assert mathcheck.normalize_answer("5x") == "5x"  # a letter right after the number is math, kept
    assert mathcheck.normalize_answer("\\$1,000") == "\\$1,000"


def _reference_rates(solutions: list[str], answers: list[str]) -> tuple[float, float]:
    """Share of reference solutions graded correct against their own answer, and against another row's.

    The wrong pairing is a derangement (row i gets the answer of the next row in a shuffled order), so no
    row is ever paired with itself; equal answers of different rows (many GSM8K answers are small integers)
    still count as correct, as they should.
    """
    own = math_verify_reward(completions=solutions, answer=answers)
    order = list(range(len(answers)))
    random.Random(0).shuffle(order)
    other = [None] * len(answers)
    for pos, i in enumerate(order):
        other[i] = answers[order[(pos + 1) % len(order)]]
    shuffled = math_verify_reward(completions=solutions, answer=other)
    return sum(r == 1.0 for r in own) / len(own), sum(r == 1.0 for r in shuffled) / len(shuffled)


@needs_data
@pytest.mark.parametrize("name", ["gsm8k", "math500"])
def test_reference_solutions_score_one_and_shuffled_pairs_do_not(name):
    from oarl.lab.math.data import load_gsm8k, load_math500

    ds = load_gsm8k("test") if name == "gsm8k" else load_math500()
    start = time.perf_counter()
    own, shuffled = _reference_rates(list(ds["solution"]), list(ds["answer"]))
    seconds = time.perf_counter() - start
    print(f"\n{name}: {len(ds)} rows, own {own:.4f}, shuffled {shuffled:.4f}, {seconds:.1f}s")
    assert own >= 0.99
    assert shuffled <= 0.05
