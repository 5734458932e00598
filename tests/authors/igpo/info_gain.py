# Adapted from GuoqingWang1/IGPO (https://github.com/GuoqingWang1/IGPO), commit
# bff163b72718a8b8f9175ce019ec7114ad6bd59a, licensed under the Apache License, Version 2.0 (copy: LICENSE in
# this folder). Test fixture for oarl's comparison (docs/authors.md); not part of the oarl package.
#
# Source: scrl/llm_agent/generation.py
#   lines 295-305  the pseudo response "\nNow there's enough information to answer\n</think>\n<answer>\n{gt}
#                  \n</answer><|im_end|>" and gt_idx = [len(prefix tokens), len(pseudo) - len(suffix tokens)];
#   lines 234-264  pseudo_generate_sequences: seq = context + pseudo response, position ids continuing the
#                  context's, attention 1 up to the first EOS of the response;
#   lines 410-424  log-probs of the pseudo response under the actor (verl's compute_log_prob), then per turn
#                  gt_prob = exp(mean(log_probs[gt_idx[0]:gt_idx[1]])) and
#                  info_gain_reward[turn] = gt_prob(turn) - gt_prob(turn - 1).
#
# What the oarl authors changed to make it runnable without verl / Ray / an agent loop: the DataProto batch and
# the actor worker are replaced by one Hugging Face forward per context (verl's compute_log_prob at
# temperature 1: log_softmax of the logits predicting each response token, gathered); the chat-template
# rolling context is given as token ids (prompt + the turns so far); the pseudo response is given as token ids
# split into (bridge, ground truth, end) so that gt_idx needs no re-tokenization. Lines 414-424 are kept as
# they are, on plain lists.
from __future__ import annotations

import torch


@torch.no_grad()
def pseudo_response_log_probs(model, context: list[int], response: list[int]) -> torch.Tensor:
    """``[len(response)]`` log-probabilities of the response tokens after the context (generation.py:234-264 and
    verl's compute_log_prob: positions continue the context's; one row, nothing padded)."""
    seq = torch.tensor([context + response])
    pos = torch.arange(seq.shape[1])[None]
    logits = model(input_ids=seq, attention_mask=torch.ones_like(seq), position_ids=pos).logits.float()
    logits = logits[0, len(context) - 1 : -1]
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(response)[:, None]).squeeze(-1)


def info_gain_rewards(model, contexts: list[list[int]], bridge: list[int], gt: list[int],
                      end: list[int]) -> tuple[list[float], list[float]]:  # fmt: skip
    """IGPO's per-turn rewards for one rollout: ``contexts[k]`` = the prompt and the first ``k`` turns
    (``contexts[0]`` the prompt alone). Returns ``(gt_probs per context, info_gain_rewards per turn)``."""
    pseudo = bridge + gt + end
    gt_idx = [len(bridge), len(pseudo) - len(end)]
    probs, rewards = [], []
    for step, ctx in enumerate(contexts):
        old_log_probs = pseudo_response_log_probs(model, ctx, pseudo)
        # generation.py:414-424, on one rollout
        if step == 0:
            gt_prob = torch.exp(old_log_probs[gt_idx[0] : gt_idx[1]].mean()).item()
        else:
            cur_prob = torch.exp(old_log_probs[gt_idx[0] : gt_idx[1]].mean()).item()
            rewards.append(cur_prob - gt_prob)
            gt_prob = cur_prob
        probs.append(gt_prob)
    return probs, rewards
