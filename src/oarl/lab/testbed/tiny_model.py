"""The tiny model every testbed task trains, and its character-level tokenizer (offline: no downloads).

The tokenizer has one token per character of :data:`ALPHABET` plus ``ANSWER`` (:data:`ANSWER_MARKER`) as one
token; the model is a randomly initialised ``LlamaForCausalLM`` built from a config. The arithmetic and flag
tasks write their text in this alphabet; the warm start (:mod:`oarl.lab.testbed.warmstart`) trains
this model on them, and the tests build small ones from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if (
    TYPE_CHECKING
):  # transformers / tokenizers are imported when a builder runs, so the tasks' data stays cheap
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

#: The token before a task's final answer (one token of the tokenizer).
ANSWER_MARKER = "ANSWER"
#: The characters the tokenizer knows (one token each); anything else is ``<unk>``.
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz=;+-*? \n"
SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")


def build_tokenizer(save_dir: str | None = None, model_max_length: int = 256) -> PreTrainedTokenizerFast:
    """Character-level fast tokenizer: one token per alphabet char, ``ANSWER`` as one token.

    No BOS/EOS is added automatically (TRL appends EOS itself); unknown characters map to
    ``<unk>``.  The ``Fuse`` decoder concatenates tokens so ``decode(encode(x)) == x``.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, ANSWER_MARKER, *ALPHABET])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # Split into "ANSWER" or single characters; [\s\S] so newline is its own piece too.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(ANSWER_MARKER + r"|[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
        model_max_length=model_max_length,
    )
    if save_dir is not None:
        fast.save_pretrained(save_dir)
    return fast


def build_tiny_model(
    tokenizer: PreTrainedTokenizerFast,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    intermediate_size: int = 384,
    max_positions: int = 256,
    seed: int = 0,
) -> LlamaForCausalLM:
    """Randomly initialised ``LlamaForCausalLM`` sized for the task (~0.86M params by default).

    Llama rather than Qwen2 (the same decoder without q/k/v biases) so that the saved checkpoint loads with
    plain ``AutoTokenizer``: transformers forces its Qwen2 tokenizer class on every ``model_type: qwen2``
    folder, and that class re-normalises text (it would drop this tokenizer's newlines and ``ANSWER``).
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)  # weights are initialised from the global torch RNG
    return LlamaForCausalLM(config)
