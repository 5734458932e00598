# ruff: noqa
# fmt: off
# Excerpt of McGill-NLP/VinePPO (https://github.com/McGill-NLP/VinePPO), commit
# efe7228469f21bad8cc8d4e44a3f688ed8cc6aac. Copyright (c) 2024 McGill NLP, MIT License (full text: LICENSE in
# this folder). Test fixture for oarl's comparison (docs/authors.md); not part of the oarl package.
#
# From src/treetune/episode_generators/math_episode_generator_with_mc_advantages.py, lines 377-432
# (MathEpisodeGeneratorWithMCAdvantages._compute_step_advantages and ._compute_mc_value).
#
# Changes made by the oarl authors to make it runnable without treetune / vLLM: the two methods are module
# functions; `self.reward_function(query, rollout, data_instance)[0]` and
# `self.reward_function.get_unfinished_response_penalty()` become the arguments `reward_function` and
# `unfinished_penalty`; the rollouts (vLLM's reasoning tree JSON) are passed as a list of
# (answer, finish_reason) pairs (the line reading them from `value_estimation_result` is kept as a comment).
from typing import Any, Dict, List, Tuple, Union


def _compute_step_advantages(trajectory: Dict[str, Any]):  # oarl: a function
    step_rewards = trajectory["step_rewards"]
    values = trajectory["values"]

    # The value of the final/terminating state is by definition 0
    assert values[-1] is None
    # noinspection DuplicatedCode
    values[-1] = 0.0

    # Fill in the missing values from the end
    for i in range(len(values) - 2, -1, -1):
        if values[i] is not None:
            break
        values[i] = step_rewards[i] + values[i + 1]

    # noinspection DuplicatedCode
    assert all(v is not None for v in values)

    advantages = [None] * len(step_rewards)
    assert len(advantages) == len(values) - 1
    assert len(advantages) == len(step_rewards)
    for i in range(len(advantages)):
        advantages[i] = step_rewards[i] + values[i + 1] - values[i]

    return advantages

def _compute_mc_value(  # oarl: a function; rollouts, reward_function, unfinished_penalty passed in
    *,
    query: str = None,
    rollouts: List[Tuple[Any, str]] = None,
    reward_function=None,
    unfinished_penalty: float = 0.0,
    data_instance: Dict[str, Any] = None,
    return_rewards: bool = False,
) -> Union[float, Tuple[float, List[float]]]:
    # noinspection DuplicatedCode
    # oarl: tree = json.loads(value_estimation_result["_treetune__reasoning_tree"])
    # oarl: rollouts = [(c["answer"], c["finish_reason"]) for c in tree["children"]]

    rewards = [
        (
            reward_function(query, rol, data_instance)[0]
            if finish_reason != "length"
            else unfinished_penalty  # oarl: self.reward_function.get_unfinished_response_penalty()
        )
        for rol, finish_reason in rollouts
    ]

    if len(rewards) == 0:
        mc_value = 0.0
    else:
        mc_value = sum(rewards) / len(rewards)

    if return_rewards:
        return mc_value, rewards

    return mc_value
