"""Loading local checkpoints (model folders written by the testbed or by any Hugging Face trainer)."""

from __future__ import annotations

import json
from pathlib import Path


def load_tokenizer(path: str | Path):
    """Load a local tokenizer, honouring a saved generic ``TokenizersBackend`` class.

    Checkpoints written by oarl load the same way with plain ``AutoTokenizer`` (see
    :func:`oarl.lab.testbed.tiny_model.build_tiny_model`); this also reads older ones, whose ``config.json``
    (``model_type: qwen2``) made ``AutoTokenizer`` pick the Qwen2 class, which re-normalises the text (the
    char-level tokenizer would lose its newlines). Real checkpoints name their own class and load as usual.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    cfg = Path(path) / "tokenizer_config.json"
    if cfg.exists() and json.loads(cfg.read_text()).get("tokenizer_class") in (
        "TokenizersBackend",
        "PreTrainedTokenizerFast",
    ):
        return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)
