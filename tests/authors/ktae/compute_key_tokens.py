# ruff: noqa
# fmt: off
# Excerpt of xiaolizh1/KTAE (https://github.com/xiaolizh1/KTAE), commit ea9fb77f366216d754e2368653911724e73a7376,
# licensed under the Apache License, Version 2.0 (copy: LICENSE in this folder). Test fixture for oarl's
# equivalence check (docs/authors.md); not part of the oarl package.
#
# From verl/workers/actor/compute_key_tokens.py, lines 19-182 (compute_Cohen, fisher_exact_test, calculate_ig,
# compute_tf, ComputeKeyTokens), and verl/trainer/ppo/core_algos.py (Copyright 2024 Bytedance Ltd. and/or its
# affiliates; Copyright 2022 The HuggingFace Team), lines 155-234
# (compute_ktae_outcome_advantage_and_keytokens).
#
# Changes made by the oarl authors to make it runnable outside verl (marked "oarl:" below):
#  - imports: the unused transformers / logging imports dropped; defaultdict imported;
#  - ComputeKeyTokens takes `zero_id` (default 151643, the source's hard-coded Qwen2 `<|endoftext|>` id, whose
#    entry it zeroes); `None` skips that line, which raises IndexError for any vocabulary whose largest response
#    id is below 151643 (e.g. SmolLM2's 49152 ids);
#  - compute_ktae_outcome_advantage_and_keytokens takes alpha / beta_ig / gamma_tf / zero_id (the source
#    hard-codes alpha = beta_ig = gamma_tf = top = 1.0) and also returns `all_weight`, the per-token key-token
#    value it adds to the advantage.
import torch
from collections import defaultdict


def compute_Cohen(a, b):
    a = torch.clamp(a, min=0, max=1)
    b = torch.clamp(b, min=0, max=1)
    h = torch.asin(torch.sqrt(a)) - torch.asin(torch.sqrt(b))
    return h


def fisher_exact_test(input_tensor):
    a, b, c, d = torch.unbind(input_tensor, dim=1)
    R1 = a + b
    R2 = c + d
    C1 = a + c
    n = R1 + R2
    k_min = torch.max(torch.tensor(0, dtype=torch.float32), R1 + C1 - n)
    k_max = torch.min(R1, C1)
    max_k = torch.max(k_max)
    k_values = torch.arange(max_k + 1, dtype=torch.float32, device=input_tensor.device)
    k_grid = torch.tile(k_values, (input_tensor.size(0), 1))  # [batch, max_k+1]
    mask = (k_grid >= k_min.unsqueeze(1)) & (k_grid <= k_max.unsqueeze(1))
    C1_grid = C1.unsqueeze(1).expand_as(k_grid)
    R1_grid = R1.unsqueeze(1).expand_as(k_grid)
    n_grid = n.unsqueeze(1).expand_as(k_grid)
    k = k_grid
    def log_comb(n, k):
        return torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)

    log_p_k = log_comb(C1_grid, k) + log_comb(n_grid - C1_grid, R1_grid - k) - log_comb(n_grid, R1_grid)
    p_k = torch.exp(log_p_k) * mask.float()
    log_p_obs = log_comb(C1, a) + log_comb(n - C1, R1 - a) - log_comb(n, R1)
    p_obs = torch.exp(log_p_obs)
    p_values = torch.sum(torch.where((p_k <= p_obs.unsqueeze(1)) & mask, p_k, 0.), dim=1)

    return p_values


def calculate_ig(table_tensor):
    t_a = table_tensor[:, 0]
    t_b = table_tensor[:, 1]
    t_c = table_tensor[:, 2]
    t_d = table_tensor[:, 3]
    t_n = t_a + t_b + t_c + t_d
    def safe_log(x):
        return torch.where(x > 0, torch.log2(x), torch.tensor(0.0, dtype=torch.float32, device=x.device))
    def entropy(p):
        return -p * safe_log(p)
    p_correct = (t_a + t_c) / t_n
    p_error = (t_b + t_d) / t_n
    h_y = entropy(p_correct) + entropy(p_error)
    def conditional_entropy(x1, x2):
        total = x1 + x2
        return torch.where(total > 0,
                           entropy(x1 / total) + entropy(x2 / total),
                           torch.tensor(0.0, dtype=torch.float32, device=x1.device))

    h_y_x = ((t_a + t_b)/t_n) * conditional_entropy(t_a, t_b) + \
            ((t_c + t_d)/t_n) * conditional_entropy(t_c, t_d)
    ig = h_y - h_y_x
    ig[t_n == 0] = 0
    return ig


def compute_tf(correct_tensor, correct_mask, wrong_tensor, wrong_mask, appear_table_tensor):
    k1 = 2.0
    b = 0.5
    correct_tensor_unmasked = correct_tensor[correct_mask == 1]
    wrong_tensor_unmasked = wrong_tensor[wrong_mask == 1]
    total_correct = correct_tensor_unmasked.numel()
    total_wrong = wrong_tensor_unmasked.numel()
    avg_len = (total_correct + total_wrong) / 2
    corrcet_k = k1 * (1 - b + b * (total_correct / avg_len))
    wrong_k = k1 * (1 - b + b * (total_wrong / avg_len))
    tf_tensor = torch.zeros((appear_table_tensor.size(0), 2), dtype=torch.float32, device=appear_table_tensor.device)
    correct_hist = torch.bincount(correct_tensor_unmasked, minlength=appear_table_tensor.size(0))
    wrong_hist = torch.bincount(wrong_tensor_unmasked, minlength=appear_table_tensor.size(0))
    tf_tensor = torch.stack(
        [(correct_hist.float() / total_correct) * (k1 + 1) / ((correct_hist.float() / total_correct) + corrcet_k),
         (wrong_hist.float() / total_wrong) * (k1 + 1) / ((wrong_hist.float() / total_wrong) + wrong_k)],
        dim=1).to(dtype=torch.float32, device=appear_table_tensor.device)

    return tf_tensor


class ComputeKeyTokens:

    def __init__(self, alpha, beta_ig, gamma_tf, top, bottom, responses_ids, mask, rewards, max_token_num,
                 zero_id=151643):  # oarl: zero_id
        self.zero_id = zero_id  # oarl
        self.top = top
        self.bottom = bottom
        self.alpha = alpha
        self.beta_ig = beta_ig
        self.gamma_tf = gamma_tf
        self.responses_ids = responses_ids
        self.mask = mask
        self.rewards = rewards
        self.max_token_num = max_token_num

    def get_distribution(self, tensor, mask):
        appear_distribution = {}
        m, n = tensor.shape
        device = tensor.device
        row_indices = torch.arange(m)[:, None].expand(m, n)  # [[0,0,0], [1,1,1], ...]
        row_indices = row_indices.to(device)
        flat_values = tensor.flatten()
        flat_rows = row_indices.flatten()
        flat_mask = mask.flatten().to(device)
        masked_values = flat_values[flat_mask == 1]
        masked_rows = flat_rows[flat_mask == 1]
        unique_values, inverse_indices = torch.unique(masked_values, return_inverse=True)
        for i, val in enumerate(unique_values.tolist()):
            current_rows = masked_rows[inverse_indices == i]
            unique_rows = torch.unique(current_rows)
            appear_distribution[val] = len(unique_rows)
        return appear_distribution

    def compute_key_tokens(self, correct_tensor, wrong_tensor, correct_mask, wrong_mask):
        key_token_result = torch.zeros(self.max_token_num + 1, dtype=torch.float32)
        if correct_tensor.size(0) == 0 or wrong_tensor.size(0) == 0:
            return key_token_result
        correct_dist = self.get_distribution(correct_tensor, correct_mask)
        wrong_dist = self.get_distribution(wrong_tensor, wrong_mask)
        appear_table_tensor = torch.zeros(
            (self.max_token_num + 1, 4),
            dtype=torch.float32,
            device=correct_tensor.device
        )
        tokenid_set = set(self.responses_ids.flatten().tolist())
        for tokenid in tokenid_set:
            correct_count = correct_dist.get(tokenid, 0)
            wrong_count = wrong_dist.get(tokenid, 0)
            total_correct = correct_tensor.size(0)
            total_wrong = wrong_tensor.size(0)
            if correct_count + wrong_count != 0:
                appear_table_tensor[tokenid] = torch.tensor(
                    [correct_count, wrong_count, total_correct - correct_count, total_wrong - wrong_count],
                    dtype=torch.float32, device=correct_tensor.device)
        ig_val = calculate_ig(appear_table_tensor) if self.beta_ig else torch.zeros(
            self.max_token_num + 1, dtype=torch.float32, device=appear_table_tensor.device)
        if self.alpha:
            fisher_pvalue = fisher_exact_test(appear_table_tensor)
            format_fisher_pvalue = torch.where(
                fisher_pvalue != 1.0, torch.exp(-2 * fisher_pvalue),
                torch.tensor(0.0, dtype=torch.float32, device=appear_table_tensor.device))
        else:
            format_fisher_pvalue = torch.zeros(self.max_token_num + 1,
                                               dtype=torch.float32,
                                               device=appear_table_tensor.device)
        if self.gamma_tf:
            tf_tensor = compute_tf(correct_tensor, correct_mask, wrong_tensor, wrong_mask, appear_table_tensor)
            x=compute_Cohen(appear_table_tensor[:, 0] / (appear_table_tensor[:, 0] + appear_table_tensor[:, 2] + 1e-10), appear_table_tensor[:, 1] / (appear_table_tensor[:, 1] + appear_table_tensor[:, 3] + 1e-10))
            x+=tf_tensor[:,0]/(tf_tensor[:,1]+1e-5)-tf_tensor[:,1]/(tf_tensor[:,0]+1e-5)
        else:
            x=compute_Cohen(appear_table_tensor[:, 0] / (appear_table_tensor[:, 0] + appear_table_tensor[:, 2] + 1e-10), appear_table_tensor[:, 1] / (appear_table_tensor[:, 1] + appear_table_tensor[:, 3] + 1e-10))
        key_token_result = ((self.alpha * format_fisher_pvalue + self.beta_ig * ig_val) *x) / (self.alpha + self.beta_ig)
        key_token_result=(torch.sigmoid(key_token_result)-0.5)*2*self.top
        if self.zero_id is not None:  # oarl: the source zeroes id 151643 unconditionally
            key_token_result[self.zero_id] = 0.
        return key_token_result

    def get_key_tokens(self):
        correct_outputs = self.responses_ids[self.rewards > 0.0]
        correct_outputs_mask = self.mask[self.rewards > 0.0]
        wrong_outputs = self.responses_ids[self.rewards <= 0.0]
        wrong_outputs_mask = self.mask[self.rewards <= 0.0]
        key_token_result = self.compute_key_tokens(correct_outputs, wrong_outputs, correct_outputs_mask,
                                                   wrong_outputs_mask)
        return key_token_result


def compute_ktae_outcome_advantage_and_keytokens(token_level_rewards: torch.Tensor,
                                                    responses: torch.Tensor,
                                                    eos_mask: torch.Tensor,
                                                    index: torch.Tensor,
                                                    epsilon: float = 1e-6,
                                                    config=None, alpha=1.0, beta_ig=1.0, gamma_tf=1.0,
                                                    zero_id=151643):  # oarl: options
    response_length = token_level_rewards.shape[-1]
    # oarl: `from verl.workers.actor.compute_key_tokens import ComputeKeyTokens` dropped (defined above)

    def average_weight_by_mask_tensor(weight, mask, n):
        assert weight.shape == mask.shape, "Weight and mask must have same shape"
        result = weight.clone()
        for i in range(weight.size(0)):
            current_mask = mask[i]
            masked_indices = current_mask.nonzero(as_tuple=True)[0]
            num_elements = masked_indices.size(0)
            if num_elements == 0:
                continue
            masked_values = weight[i].index_select(0, masked_indices)
            group_indices = torch.arange(num_elements, device=weight.device) // n
            group_sums = torch.zeros(group_indices.max() + 1, dtype=weight.dtype, device=weight.device)
            group_sums.index_add_(0, group_indices, masked_values)
            group_counts = torch.bincount(group_indices)
            group_means = group_sums / group_counts
            expanded_means = group_means.repeat_interleave(group_counts)
            result[i].index_put_((masked_indices,), expanded_means)
        return result

    id2score = defaultdict(list)
    id2reponses = {}
    id2mask = {}
    id2mean = {}
    id2std = {}
    scores = token_level_rewards.sum(dim=-1)
    with torch.no_grad():
        bsz = token_level_rewards.shape[0]
        for i in range(bsz):
            id2score[index[i]].append(scores[i])
            if index[i] in id2reponses:
                id2reponses[index[i]] = torch.cat((id2reponses[index[i]], responses[i].unsqueeze(0)), dim=0)
            else:
                id2reponses[index[i]] = responses[i].unsqueeze(0)
            if index[i] in id2mask:
                id2mask[index[i]] = torch.cat((id2mask[index[i]], eos_mask[i].unsqueeze(0)), dim=0)
            else:
                id2mask[index[i]] = eos_mask[i].unsqueeze(0)
        id2key_token = {}
        for idx in id2score:
            reponses_per_q = id2reponses[idx]
            mask_per_q = id2mask[idx]
            score_per_q = id2score[idx]
            if len(id2score[idx]) == 1:
                id2mean[idx] = torch.tensor(0.0)
                id2std[idx] = torch.tensor(1.0)
                id2key_token[idx] = torch.zeros([responses.max().item()], device=responses.device)
            elif len(id2score[idx]) > 1:
                format_score_per_q = torch.tensor(score_per_q)
                id2mean[idx] = torch.mean(format_score_per_q)
                id2std[idx] = torch.std(format_score_per_q)
                computer = ComputeKeyTokens(alpha=alpha,  # oarl: alpha, beta_ig, gamma_tf, zero_id passed in
                                            beta_ig=beta_ig,
                                            gamma_tf=gamma_tf,
                                            top=1.0,
                                            bottom=-1.0,
                                            responses_ids=reponses_per_q,
                                            mask=mask_per_q,
                                            rewards=format_score_per_q,
                                            max_token_num=responses.max().item(), zero_id=zero_id)
                
                key_tokens = computer.get_key_tokens().to(reponses_per_q.device)
                id2key_token[idx] = key_tokens
            else:
                raise ValueError(f"no score in prompt index: {idx}")
        means = torch.tensor([id2mean[index[i]] for i in range(bsz)], device=scores.device)
        stds = torch.tensor([id2std[index[i]] for i in range(bsz)], device=scores.device)
        scores = (scores - means) / (stds + epsilon)
        format_weights = [id2key_token[index[i]][responses[i]].unsqueeze(0) for i in range(bsz)]
        all_weight = torch.cat(format_weights, dim=0)
        scores = scores.unsqueeze(-1).tile([1, response_length]) * eos_mask + all_weight * eos_mask
    return scores, scores, all_weight  # oarl: all_weight returned
