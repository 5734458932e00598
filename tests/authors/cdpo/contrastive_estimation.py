# ruff: noqa
# fmt: off
# Excerpt of chenzhiling9954/Critical-Tokens-Matter (https://github.com/chenzhiling9954/Critical-Tokens-Matter),
# commit 228991e689529fed3139afc9b0374128d2029bc6, licensed under the Apache License, Version 2.0 (copy: LICENSE
# in this folder). Test fixture for oarl's equivalence check (docs/authors.md); not part of the oarl package.
#
# From src/pipeline.py, lines 223-234 (inside Pipeline.calculate_ce_score: the contrastive-estimation
# probability of every token), and src/train/train_cdpo.py, lines 131-138 (inside CDPOTrainer.dpo_loss: the
# per-token weights of the chosen and rejected responses).
#
# Changes made by the oarl authors to make it runnable (marked "oarl:"): each excerpt is a function; the models
# stay on the CPU (`.to("cuda")` / `.to("cpu")` dropped); the tokenized `input_ids` are an argument (the source
# tokenizes `question + response`); the weights are built from the ce_prob lists of one pair, without moving them
# to the policy's device.
import torch


def ce_prob(pos_model, neg_model, input_ids):  # oarl: pipeline.py:223-234 as a function
    pos_outputs = pos_model(input_ids.unsqueeze(0), return_dict=True)
    pos_logits = pos_outputs.logits
    neg_outputs = neg_model(input_ids.unsqueeze(0), return_dict=True)
    neg_logits = neg_outputs.logits
    cd_logits = (1 + 1) * pos_logits - 1 * neg_logits
    cd_probs = cd_logits.softmax(dim=-1)

    expanded_input_ids = input_ids.unsqueeze(0).unsqueeze(-1)[:, 1:, :]
    cd_selected_probs = torch.gather(cd_probs, 2, expanded_input_ids).squeeze()
    return cd_selected_probs.tolist()  # oarl: prob_result[key]["ce_prob"] = cd_selected_probs.tolist()


def token_weights(line, model_name):  # oarl: train_cdpo.py:131-138 for one pair (`line` = prob_result entry)
    chosen = torch.tensor(line["pos"]["ce_prob"] + [1])
    if "Qwen" in model_name:
        rejected = 1 - torch.tensor([0] + line["neg"]["ce_prob"])
    else:
        rejected = 1 - torch.tensor(line["neg"]["ce_prob"] + [0])
    return chosen, rejected
