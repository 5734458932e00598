"""oarl's ``tree`` (TEMPO's prefix tree) against TreeRL's released tree values (excerpt in this folder).

TreeRL grows its tree by entropy-guided branching (vLLM); what it computes on a finished tree is what compares:
the group's completions as a compressed prefix tree (a node per run of tokens between branch points), each leaf
a completion with its reward. TreeRL's value of a node is the mean over the leaves under it of
``R_i - mean_{j != i} R_j`` (leave-one-out); a token's credit is its segment's ``V(node) - V(parent)`` (plain,
``use_state_value_reward=False``), and every token of the segment gets it. oarl's ``dV_t`` is the same
difference with ``V`` the plain mean reward, on the segment's first token only. Since
``R_i - mean_{-i} = n / (n - 1) (R_i - mean)``, theirs is ``n / (n - 1)`` times ours at each segment's first
token; their released training script (``scripts/treerl-qw14b.sh``) adds the global term
(``use_state_value_reward``: ``V(node) - V(parent) + V(node)``) and divides values by ``sqrt`` of the leaves
under the node (``use_weighted_value``, ``weighted_value_style sqrt``), reported as a rank correlation.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from authors_common import GroupBatch, max_rel, rho
from treerl.tree_values import (
    MCTSNode,
    compute_weighted_update,
    gather_paths,
    leaf_normalize,
    selected_backpropagate,
)

from oarl.core.scorers import get_scorer


def build_tree(completions: list[list[int]], rewards: list[float]) -> tuple[MCTSNode, list[MCTSNode]]:
    """A compressed prefix tree of the completions (no completion a prefix of another): root (the prompt),
    segment nodes, one terminal leaf per completion in the given order."""
    root = MCTSNode([])
    leaves: list[MCTSNode | None] = [None] * len(completions)

    def grow(parent: MCTSNode, idx: list[int], depth: int) -> None:
        by_first: dict[int, list[int]] = {}
        for i in idx:
            if depth >= len(completions[i]):
                raise ValueError("a completion is a prefix of another: no TreeRL tree")
            by_first.setdefault(completions[i][depth], []).append(i)
        for members in by_first.values():
            end = depth + 1
            while (
                all(end < len(completions[i]) for i in members)
                and len({completions[i][end] for i in members}) == 1
            ):
                end += 1
            node = MCTSNode(completions[members[0]][depth:end], parent=parent)
            parent.children.append(node)
            if len(members) == 1 and end == len(completions[members[0]]):
                i = members[0]
                node.terminal, node.R, node.main_chain = True, rewards[i], rewards[i] > 0
                leaves[i] = node
            else:
                grow(node, members, end)

    grow(root, list(range(len(completions))), 0)
    return root, leaves


def theirs(
    completions, rewards, script: bool = False
) -> tuple[list[list[float]], list[list[bool]], list[list[bool]]]:
    """Per row: TreeRL's per-token value, which tokens start a segment, which segments ``fill_in_paths``
    filled from the previous one (their value was 0). ``script``: their training script's options."""
    root, leaves = build_tree(completions, list(rewards))
    with contextlib.redirect_stdout(io.StringIO()):  # the source prints as it goes
        leaf_normalize(leaves, root, average_one_generation=False, overall_norm_style="none")
        if script:
            for leaf in leaves:
                selected_backpropagate(leaf)
            compute_weighted_update(root, reweighted_value_style="sqrt")
        raw = [[n.accumulated_value / n.terminal_in_subtree - n.parent.accumulated_value / n.parent.terminal_in_subtree
                for n in _path(leaf)] for leaf in leaves]  # fmt: skip
        paths = gather_paths(root, leaves, len(leaves), use_state_value_reward=script)
    vals, first, filled = [], [], []
    for path, r in zip(paths, raw, strict=True):
        v, f, fl = [], [], []
        for seg, before in zip(path, r, strict=True):
            n = len(seg["token_answer"])
            v += [seg["value"]] * n
            f += [True] + [False] * (n - 1)
            fl += [abs(before) < 1e-8] * n
        vals.append(v)
        first.append(f)
        filled.append(fl)
    return vals, first, filled


def _path(leaf: MCTSNode) -> list[MCTSNode]:
    out = []
    while leaf.parent is not None:
        out.append(leaf)
        leaf = leaf.parent
    return out[::-1]


def ours(gb: GroupBatch) -> list[list[float]]:
    """oarl's signed ``dV_t`` at each row's completion tokens (``credit="aligned"`` times ``sign(r - mean)``)."""
    lay = gb.layout
    s = get_scorer("tree")(None, lay, credit="aligned").double()
    out = []
    for b, cols in enumerate(gb.completion_cols):
        g = lay.group_ids == lay.group_ids[b]
        sign = float(torch.sign(lay.rewards[b].double() - lay.rewards[g].double().mean()))
        out.append((s[b, cols] * sign).tolist())
    return out


def measure(gb: GroupBatch) -> dict:
    mine = ours(gb)
    first_t, first_o, first_s, other_t, n_filled, first_filled = [], [], [], [], 0, 0
    for g in gb.layout.group_ids.unique().tolist():
        rows = [b for b in range(len(gb.rows)) if int(gb.layout.group_ids[b]) == g]
        comps = [gb.rows[b][1] for b in rows]
        rews = [gb.rows[b][2] for b in rows]
        n = len(rows)
        plain, first, filled = theirs(comps, rews)
        script, *_ = theirs(comps, rews, script=True)
        for k, b in enumerate(rows):
            for j in range(len(comps[k])):
                if filled[k][j]:
                    n_filled += 1
                    first_filled += first[k][j]
                    continue
                if first[k][j]:
                    first_t.append(plain[k][j] * (n - 1) / n)
                    first_o.append(mine[b][j])
                    first_s.append(script[k][j])
                else:
                    other_t.append(plain[k][j])
    first_t, first_o = np.array(first_t), np.array(first_o)
    return {
        "segment_first_tokens": len(first_t),
        "max_rel_first_tokens_scaled": max_rel(first_t, first_o),
        "tokens_inside_segments": len(other_t),
        "inside_segments_nonzero_share": float(np.mean(np.abs(other_t) > 1e-12)) if other_t else 0.0,
        "tokens_in_zero_value_segments": n_filled,  # fill_in_paths copies the previous value (not on a first segment)
        "spearman_script_vs_ours_first_tokens": rho(first_s, first_o),
    }
