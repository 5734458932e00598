# ruff: noqa
# fmt: off
# Excerpt of PRIME-RL/PRIME (https://github.com/PRIME-RL/PRIME), commit 18ad596f08d487bb546d80d738d99ec697bd2e75,
# licensed under the Apache License, Version 2.0 (copy: LICENSE in this folder); the file's own notice:
# "Copyright 2024 Bytedance Ltd. and/or its affiliates". Test fixture for oarl's equivalence check
# (docs/authors.md); not part of the oarl package.
#
# From training/verl/workers/actor/dp_prime.py, lines 77-114 (DataParallelPRIME._forward_micro_batch) and
# 116-143 (DataParallelPRIME.compute_implicit_reward), and training/verl/utils/torch_functional.py, lines 70-73
# (logprobs_from_logits_naive, which logprobs_from_logits falls back to without flash-attn).
#
# Changes made by the oarl authors to make it runnable on a CPU without verl / flash-attn / FSDP (marked "oarl:"):
#  - the two methods live on a small class holding the config they read (`prime_granularity`, `use_remove_padding`);
#  - `torch.autocast(device_type='cuda', dtype=torch.bfloat16)` becomes a no-op context (float32 on CPU: the
#    comparison is of the formula; the source runs the PRM and the reference in bf16);
#  - gather_from_labels (verl) written inline; the remove-padding branch kept but never taken.
import contextlib

import torch
import torch.nn.functional as F


def gather_from_labels(data, label):  # oarl: verl.utils.torch_functional.gather_from_labels, inline
    return torch.gather(data, -1, label.unsqueeze(-1)).squeeze(-1)


def logprobs_from_logits(logits, labels):  # oarl: the naive path (no flash-attn cross entropy)
    logp = F.log_softmax(logits, dim=-1)
    logpy = gather_from_labels(logp, labels)
    return logpy


class _Config(dict):  # oarl: attribute access on a dict, as verl's DictConfig
    __getattr__ = dict.get


class DataParallelPRIME:  # oarl: the two methods only
    def __init__(self, prime_granularity="token"):  # oarl
        self.config = _Config(prime_granularity=prime_granularity)
        self.use_remove_padding = False


    def _forward_micro_batch(self, module, micro_batch, prompt_length, no_grad=False):
        response_length = micro_batch['responses'].size(-1)
        grad_context = torch.no_grad() if no_grad else torch.enable_grad()
        with grad_context, contextlib.nullcontext():  # oarl: torch.autocast(device_type='cuda', dtype=torch.bfloat16)
            input_ids = micro_batch['input_ids']
            batch_size, seqlen = input_ids.shape
            attention_mask = micro_batch['attention_mask']
            position_ids = micro_batch['position_ids']
            if self.use_remove_padding:
                input_ids_rmpad, indices, cu_seqlens, max_seqlen_in_batch = unpad_input(
                    input_ids.unsqueeze(-1), attention_mask)  # input_ids_rmpad (total_nnz, ...)
                input_ids_rmpad = input_ids_rmpad.transpose(0, 1)  # (1, total_nnz)

                # unpad the position_ids to align the rotary
                position_ids_rmpad = index_first_axis(rearrange(position_ids.unsqueeze(-1), "b s ... -> (b s) ..."),
                                                      indices).transpose(0, 1)
                output = module(input_ids=input_ids_rmpad,
                                        attention_mask=None,
                                        position_ids=position_ids_rmpad,
                                        use_cache=False)
                logits_rmpad = output.logits.squeeze(0)
                logprobs = log_probs_from_logits_all_rmpad(input_ids_rmpad=input_ids_rmpad,
                                                            logits_rmpad=logits_rmpad,
                                                            indices=indices,
                                                            batch_size=batch_size,
                                                            seqlen=seqlen,
                                                            response_length=response_length)  # (batch, seqlen)
            else:
                output = module(input_ids=input_ids,
                                        attention_mask=attention_mask,
                                        position_ids=position_ids,
                                        use_cache=False)
                logits = output.logits[:, -response_length - 1:-1]
                logprobs = logprobs_from_logits(logits, micro_batch['responses'])

        return logprobs



    def compute_implicit_reward(self, micro_batch, log_probs, ref_log_probs):
        response_length = micro_batch['responses'].shape[-1]
        max_positions = micro_batch['attention_mask'][:, -response_length:].sum(-1)

        ref_log_probs.to(log_probs.dtype)
        q = log_probs[:, -response_length:] - ref_log_probs[:, -response_length:]  # this is actually diff of q

        # reward computation does not need gradient. only q needs
        with torch.no_grad():
            step_ends = []
            if self.config.prime_granularity == 'token':
                for i in range(micro_batch['input_ids'].shape[0]):
                    step_ends.append(list(range(max_positions[i])))
            elif self.config.prime_granularity == 'whole':
                for i in range(micro_batch['input_ids'].shape[0]):
                    step_ends.append([max_positions[i] - 1])
            else:
                raise NotImplementedError

            token_level_score = torch.zeros_like(micro_batch['input_ids'][:, -response_length:]).to(torch.float32)
            # the strategy of translating q to reward function:
            for i, step_end in enumerate(step_ends):
                for j in range(len(step_end)):
                    step_range = [min(step_end[j - 1] + 1, response_length - 1) if j > 0 else 0,
                                  min(response_length - 1, step_end[j])]
                    token_level_score[i, step_range[1]] = q[i, step_range[0]:step_range[1] + 1].sum()

        return token_level_score, q
