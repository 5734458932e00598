"""A tiny offline stand-in for a math policy: byte-level BPE trained on GSM8K text plus a small Qwen2 model.

Tests and smoke runs of the math path (prompt template -> generation -> math-verify reward -> OAR -> update,
and ``oarl eval``) need a real tokenizer with a chat template and a model that sometimes writes a final
answer, without downloading anything. :func:`build_tiny_math_checkpoint` trains the tokenizer on the local
GSM8K train split, builds a random ``Qwen2ForCausalLM`` from a config and, optionally, fits it for a few
seconds on short GSM8K-style answers (``<last line of the solution>\\n#### <answer>``) so that its sampled
completions contain ``####`` answer spans. The checkpoint is an ordinary model folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from oarl.lab.math.data import data_dir as resolve_data_dir
from oarl.lab.math.data import load_gsm8k
from oarl.lab.math.prompts import DEFAULT_INSTRUCTION, build_prompt, render_prompt

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
#: A minimal ChatML template (the Qwen2.5 layout without the default system prompt).
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinyMathConfig:
    """Sizes of the tiny tokenizer / model and the length of its optional warm-up fit."""

    vocab_size: int = 1024
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    max_positions: int = 512
    fit_steps: int = 0
    fit_batch_size: int = 16
    fit_learning_rate: float = 3e-3
    fit_prompt_tokens: int = 16  # the fit sees only the end of each prompt (fast; enough for the format)
    seed: int = 0


def build_math_tokenizer(texts: list[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Byte-level BPE (Qwen2's pre-tokenisation) trained on ``texts``, with a ChatML chat template.

    Pad is ``<|endoftext|>`` and EOS ``<|im_end|>``, as in Qwen2.5-Instruct; nothing is added automatically
    around encoded text (TRL adds EOS itself).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        clean_up_tokenization_spaces=False,
        model_max_length=512,
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def short_answer(solution: str) -> str:
    """A GSM8K solution cut to its last reasoning line plus ``#### answer`` (calculator ``<<..>>`` removed)."""
    import re

    body, _, final = solution.rpartition("####")
    lines = [ln for ln in re.sub(r"<<[^>]*>>", "", body).strip().splitlines() if ln.strip()]
    return f"{lines[-1].strip() if lines else ''}\n#### {final.strip()}"


def cache_key(cfg: TinyMathConfig, data_file: Path) -> str:
    """Settings, this module's source and the data file's size/mtime: a change rebuilds."""
    stat = data_file.stat()
    blob = json.dumps(
        {"cfg": asdict(cfg), "code": hashlib.sha1(Path(__file__).read_bytes()).hexdigest(),
         "data": [str(data_file.resolve()), stat.st_size, int(stat.st_mtime)]},
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def build_tiny_math_checkpoint(
    cache_dir: str | Path,
    config: TinyMathConfig | None = None,
    data_dir: str | Path | None = None,
) -> Path:
    """A local model folder (tokenizer + tiny Qwen2) under ``cache_dir``, built once and then reused.

    Written to a temporary folder and renamed when complete, so an interrupted build leaves no half cache.
    """
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = config or TinyMathConfig()
    train_file = resolve_data_dir(data_dir) / "gsm8k_train.jsonl"
    path = Path(cache_dir) / f"tiny-gsm8k-{cache_key(cfg, train_file)}"
    if (path / "config.json").exists() and (path / "tokenizer.json").exists():
        return path
    data = load_gsm8k("train", data_dir)

    tok = build_math_tokenizer(
        [*data["question"], *data["solution"], DEFAULT_INSTRUCTION, "\\boxed{}"], cfg.vocab_size
    )
    torch.manual_seed(cfg.seed)
    model = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(tok),
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=max(1, cfg.num_heads // 2),
            max_position_embeddings=cfg.max_positions,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            bos_token_id=None,
            tie_word_embeddings=True,
        )
    )
    if cfg.fit_steps > 0:
        prompts = [render_prompt(build_prompt(q, tok), tok) for q in data["question"]]
        targets = [short_answer(s) + tok.eos_token for s in data["solution"]]
        _fit(model, tok, prompts, targets, cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    tmp = path.with_name(path.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def _fit(model, tok, prompts: list[str], targets: list[str], cfg: TinyMathConfig) -> None:
    """A few completion-only next-token steps (loss on the target tokens only)."""
    import torch

    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.fit_learning_rate)
    model.train()
    for _ in range(cfg.fit_steps):
        idx = torch.randint(len(prompts), (cfg.fit_batch_size,), generator=g).tolist()
        p_ids = [
            p[-cfg.fit_prompt_tokens :]
            for p in tok([prompts[i] for i in idx], add_special_tokens=False)["input_ids"]
        ]
        t_ids = tok([targets[i] for i in idx], add_special_tokens=False)["input_ids"]
        rows = [(p + t)[: cfg.max_positions] for p, t in zip(p_ids, t_ids, strict=True)]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), tok.pad_token_id)
        labels = torch.full((len(rows), width), -100)
        for r, (row, p) in enumerate(zip(rows, p_ids, strict=True)):
            ids[r, : len(row)] = torch.tensor(row)
            labels[r, len(p) : len(row)] = torch.tensor(row[len(p) :])
        mask = (labels != -100) | (torch.arange(width) < torch.tensor([len(p) for p in p_ids])[:, None])
        loss = model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
