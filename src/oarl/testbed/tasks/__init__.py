"""Embedded synthetic tasks (offline, CPU-friendly) with known causal structure."""

from oarl.testbed.tasks.arith import (
    ANSWER_MARKER,
    ArithConfig,
    ArithProblem,
    arith_reward,
    build_tiny_model,
    build_tokenizer,
    char_spans_to_token_mask,
    dependency_path,
    extract_answer,
    generate_problems,
    make_dataset,
    oracle_char_spans_for,
)

__all__ = [
    "ANSWER_MARKER",
    "ArithConfig",
    "ArithProblem",
    "arith_reward",
    "build_tiny_model",
    "build_tokenizer",
    "char_spans_to_token_mask",
    "dependency_path",
    "extract_answer",
    "generate_problems",
    "make_dataset",
    "oracle_char_spans_for",
]
