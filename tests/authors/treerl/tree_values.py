# ruff: noqa
# fmt: off
# Excerpt of THUDM/TreeRL (https://github.com/THUDM/TreeRL), commit f0edbea6f2f6392c46d297f83fb4929a9524266e,
# licensed under the Apache License, Version 2.0 (copy: LICENSE in this folder). Test fixture for oarl's
# comparison (docs/authors.md); not part of the oarl package.
#
# From openrlhf/trainer/ppo_utils/tree_node.py, lines 377-481 (leaf_normalize, leaf_backpropagate,
# normalize_all_steps, compute_accumulated_value) and 545-570 (selected_backpropagate, compute_weighted_update), and openrlhf/trainer/ppo_utils/parallel_mcts.py,
# lines 1557-1569 (fill_in_paths) and 1603-1679 (path_from_root_to_node, gather_paths).
#
# Changes made by the oarl authors to make it runnable without vLLM / pydantic / the MCTS search:
#  - MCTSNode (parallel_mcts.py:279, a pydantic model with 20 fields) is replaced by a plain class holding the
#    fields these functions read (marked "oarl:"); the tree itself is built by the caller (compare.py);
#  - imports reduced to what these functions use.
from __future__ import annotations

import math
from typing import Any, Dict, List
from collections import deque


class MCTSNode:  # oarl: stand-in for parallel_mcts.py:279 (the fields read below, same defaults)
    def __init__(self, answer_token, parent=None, terminal=False, main_chain=False, R=0.0):
        self.answer_token = list(answer_token)
        self.answer = ""
        self.parent = parent
        self.children = []
        self.terminal = terminal
        self.main_chain = main_chain
        self.R = R
        self.value = 0
        self.terminal_in_subtree = 0
        self.correct_terminal_in_subtree = 0
        self.selected_terminal_in_subtree = 0
        self.accumulated_value = 0
        self.finish_reason = "stop"
        self.reward_raw = None


def leaf_normalize(nodes,root,average_one_generation:bool = False,overall_norm_style = "token",inner_repetition_penalty:bool = False):
    leaf_correctness = [leaf.R for leaf in nodes]
    print("leaf_correctness",leaf_correctness)
    _sum = sum(leaf_correctness)
    num = len(leaf_correctness) - 1
    if num == 0:
        # return
        assert False, "entropy num_traces == 0"
    else:
        mean = [(_sum - leaf_correctness[i]) / num for i in range(len(leaf_correctness))]
        # root.reward_raw用所有的leaf_correctness的平均值
        root.reward_raw = sum(leaf_correctness) / len(leaf_correctness)
        for i, leaf in enumerate(nodes):
            leaf.R = leaf.R - mean[i]
            leaf.accumulated_value = leaf.R
            if inner_repetition_penalty:
                if leaf.finish_reason != "stop":
                    leaf.R = -1
                    leaf.accumulated_value = leaf.R
            leaf_backpropagate(leaf)
        if average_one_generation:
            compute_accumulated_value(root)
    normalize_all_steps(root, overall_norm_style)
            
def leaf_backpropagate(node: MCTSNode):
    if node.terminal and node.main_chain:
        node.terminal_in_subtree += 1
        node.correct_terminal_in_subtree += 1
        # 所有父亲的terminal_in_subtree和correct_terminal_in_subtree都加1
        parent = node.parent
        while parent:
            parent.terminal_in_subtree += 1
            parent.correct_terminal_in_subtree += 1
            parent.accumulated_value += node.accumulated_value
            parent = parent.parent
    elif node.terminal:
        node.terminal_in_subtree += 1
        # 所有父亲的terminal_in_subtree都加1
        parent = node.parent
        while parent:
            parent.terminal_in_subtree += 1
            parent.accumulated_value += node.accumulated_value
            parent = parent.parent

def normalize_all_steps(root: MCTSNode, overall_norm_style: str = "token"):
    # 从root开始遍历所有节点，对所有terminal_in_subtree！=0节点的accumulated_value进行归一化
    all_steps = []
    to_consider = deque([root])
    while to_consider:
        current_node = to_consider.popleft()
        if current_node.terminal_in_subtree != 0 or current_node.terminal:
            all_steps.append(current_node)
        to_consider.extend(current_node.children)

    print("all_step value",len(all_steps))
    if overall_norm_style == "step":
        print("step level normalization")
        step_sum = 0
        step_num = 0
        for node in all_steps:
            # step_sum += node.accumulated_value*node.terminal_in_subtree
            # step_num += node.terminal_in_subtree
            step_sum += node.accumulated_value
            step_num += node.terminal_in_subtree
        if step_num == 0:
            mean = 0
        else:
            mean = step_sum/step_num
        print("mean:", mean,step_sum,step_num)
        for node in all_steps:
            node.accumulated_value = node.accumulated_value - mean * node.terminal_in_subtree
    elif overall_norm_style == "token":
        print("token level normalization")
        step_sum = 0
        step_num = 0
        for node in all_steps:
            # step_sum += node.accumulated_value*node.terminal_in_subtree*len(node.answer_token)
            # step_num += node.terminal_in_subtree*len(node.answer_token)
            step_sum += node.accumulated_value*len(node.answer_token)
            step_num += node.terminal_in_subtree*len(node.answer_token)
        if step_num == 0:
            mean = 0
        else:
            mean = step_sum/step_num
        print("mean:", mean)
        for node in all_steps:
            node.accumulated_value = node.accumulated_value - mean * node.terminal_in_subtree
    else:
        return
        
def compute_accumulated_value(node: MCTSNode):
    if not node.children:  # If the node is a leaf node
        return node.accumulated_value

    # Post-order traversal: first process all children
    total_value = 0
    terminal_children = 0
    for child in node.children:
        if child.terminal_in_subtree > 0:
            terminal_children += 1
            total_value += compute_accumulated_value(child)

    # Calculate the average accumulated value for the current node
    node.accumulated_value = total_value / terminal_children if terminal_children > 0 else 0
    return node.accumulated_value


def selected_backpropagate(node: MCTSNode):
    node.selected_terminal_in_subtree += 1
    # 所有父亲的terminal_in_subtree都加1
    parent = node.parent
    while parent:
        parent.selected_terminal_in_subtree += 1
        parent = parent.parent

def compute_weighted_update(node: MCTSNode, reweighted_value_style="original"):
    if node.selected_terminal_in_subtree == 0:
        return
    # assert reweighted_value_style == "sqrt"
    if reweighted_value_style == "sqrt":
        node.accumulated_value = node.accumulated_value / math.sqrt(node.selected_terminal_in_subtree)
    elif reweighted_value_style == "uniform":
        node.accumulated_value = node.accumulated_value / node.selected_terminal_in_subtree
    elif reweighted_value_style == "original":
        node.accumulated_value = node.accumulated_value
    else:
        raise ValueError(f"Unsupported rewegihted_value_style: {reweighted_value_style}")
    
    # node.accumulated_value = node.accumulated_value * node.terminal_in_subtree / node.selected_terminal_in_subtree
    # node.accumulated_value = node.accumulated_value * node.terminal_in_subtree / node.selected_terminal_in_subtree
    
    for child in node.children:
        compute_weighted_update(child, reweighted_value_style=reweighted_value_style)


def fill_in_paths(paths):
    # 对于每个路径，如果存在"value"=0，就用他的前一个节点的"value"填充
    for path in paths:
        for i in range(1,len(path)):
            epsilon = 1e-8
            if abs(path[i]["value"]) < epsilon: 
            # if path[i]["value"] == 0:
                assert i > 0, "value=0 in the first node"
                assert path[i]["value"] < epsilon  and path[i]["value"] > -epsilon, "value is not 0"
                # print("fill in value",path[i-1]["value"])
                path[i]["value"] = path[i-1]["value"]
    return paths


def path_from_root_to_node(node: MCTSNode,average_one_generation:bool = False) -> List[Dict[str, Any]]:
    path = []
    while node.parent is not None:
        if average_one_generation:
            print("average_one_generation when gather")
            parent_value = node.parent.accumulated_value
            child_value = node.accumulated_value
        else:
            parent_value = node.parent.accumulated_value / node.parent.terminal_in_subtree
            child_value = node.accumulated_value / node.terminal_in_subtree
        if node.terminal:
            assert node.terminal_in_subtree == 1, f"terminal_in_subtree is not 1,{node.terminal_in_subtree}"
        path.append({'answer': node.answer, 'token_answer':node.answer_token,'reward': node.value,"pass_ratio":node.correct_terminal_in_subtree/node.terminal_in_subtree,"value":child_value - parent_value,"state_value":child_value})
        node = node.parent
    return path[::-1]

def gather_paths(root:MCTSNode,selected_terminals: list[MCTSNode], pass_k: int,use_orm_reward:bool = False,use_chain_reward:bool=False,step_level_norm:bool=False,use_state_value_reward:bool=False,use_value_only:bool=False,average_one_generation:bool=False,advantage_mix_allancestor:bool=False) -> List[List[Dict[str, Any]]]:
    paths = []
    if len(selected_terminals) < pass_k:
        return None
    # terminal_values = normalize_selected_terminals(selected_terminals)
    terminal_values = [leaf.accumulated_value for leaf in selected_terminals]
    # 添加 selected_terminal 的叶子节点路径
    for terminal_node in selected_terminals:
        paths.append(path_from_root_to_node(terminal_node,average_one_generation))
    assert len(paths) == pass_k, f"Failed to generate {pass_k} paths,{len(paths)} instead"
    if average_one_generation:
        root_value = root.accumulated_value
    else:
        root_value = root.accumulated_value / root.terminal_in_subtree
    if advantage_mix_allancestor:
        print("use advantage mix all ancestor")
        for path in paths:
            # 每个节点的 value 都用其 state_value - 祖先.state_value，对所有祖先求平均
            for i in range(len(path)):
                if i == 0:
                    path[i]["value"] = path[i]["state_value"] - root_value
                else:
                    sum_value = 0
                    num_value = 0
                    for j in range(i):
                        sum_value += path[i]["state_value"] - path[j]["state_value"]
                        num_value += 1
                    sum_value += path[i]["state_value"] - root_value
                    num_value += 1
                    path[i]["value"] = sum_value / num_value
        return paths
    paths = fill_in_paths(paths)
    if use_chain_reward:
        print("use chain reward in mcts!!")
        terminal_values = normalize_selected_terminals(selected_terminals)
        for path in paths:
            for node in path:
                node["value"] = terminal_values[paths.index(path)]
    elif use_orm_reward:
        print("use orm reward in mcts!!")
        terminal_values = normalize_selected_terminals(selected_terminals)
        for path in paths:
            for node in path:
                # node["value"] = (node["value"] + terminal_values[paths.index(path)])/2
                node["value"] = (node["value"] + terminal_values[paths.index(path)])
    elif use_state_value_reward:
        print("use state value reward in mcts!!")
        # paths = normalize_all_paths(paths,step_level_norm)
        for path in paths:
            for node in path:
                # node["value"] = (node["value"] + node["state_value"])/2
                node["value"] = (node["value"] + node["state_value"])
    elif use_value_only:
        print("use value only in mcts!!")
        for path in paths:
            for node in path:
                node["value"] = node["state_value"]
    else:
        print("use pure advantage in mcts!!")
    print("path num",len(paths))
    return paths
