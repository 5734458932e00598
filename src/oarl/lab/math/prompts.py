"""Prompt templates: how a question becomes the text (or chat messages) the policy answers.

Styles:

- ``chat``: chat messages (optional system prompt, then ``question + "\\n" + instruction`` as the user turn);
  the tokenizer's chat template renders them. TRL renders conversational prompts itself, so training and
  :func:`render_prompt` (used by ``oarl eval``) produce the same tokens.
- ``plain``: ``plain_format`` with ``{question}`` and ``{instruction}`` filled in, for base models and
  tokenizers without a chat template.
- ``raw``: the question text as it is (a task whose questions are already complete prompts, e.g. ``arith``).
- ``auto``: ``chat`` when the tokenizer has a chat template, else ``plain``.

The default instruction is Qwen2.5-Instruct's math prompt, which asks for the ``\\boxed{}`` answer that
:mod:`oarl.lab.math.rewards` extracts and OAR's probe reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset

DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
DEFAULT_PLAIN_FORMAT = "Question: {question}\n{instruction}\nAnswer: "
STYLES = ("auto", "chat", "plain", "raw")

Prompt = str | list[dict[str, str]]


@dataclass(frozen=True)
class PromptTemplate:
    """How to turn a question into a prompt (see the module docstring for the styles)."""

    style: str = "auto"
    instruction: str = DEFAULT_INSTRUCTION
    system_prompt: str | None = None
    plain_format: str = DEFAULT_PLAIN_FORMAT

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"unknown prompt style {self.style!r}; expected one of {STYLES}")
        if "{question}" not in self.plain_format:
            raise ValueError(f"plain_format must contain '{{question}}', got {self.plain_format!r}")

    def resolve(self, tokenizer: Any) -> str:
        """The concrete style for ``tokenizer``: ``auto`` becomes ``chat`` or ``plain``."""
        if self.style != "auto":
            if self.style == "chat" and not getattr(tokenizer, "chat_template", None):
                raise ValueError("prompt style 'chat' needs a tokenizer with a chat template; use 'plain'")
            return self.style
        return "chat" if getattr(tokenizer, "chat_template", None) else "plain"


def build_prompt(question: str, tokenizer: Any, template: PromptTemplate | None = None) -> Prompt:
    """The prompt for one question: chat messages (style ``chat``) or a string (``plain`` / ``raw``)."""
    template = template or PromptTemplate()
    style = template.resolve(tokenizer)
    if style == "raw":
        return question
    if style == "plain":
        return template.plain_format.format(question=question, instruction=template.instruction)
    user = f"{question}\n{template.instruction}" if template.instruction else question
    messages = [{"role": "system", "content": template.system_prompt}] if template.system_prompt else []
    return [*messages, {"role": "user", "content": user}]


def render_prompt(prompt: Prompt, tokenizer: Any) -> str:
    """Prompt text as the policy sees it: chat messages through the chat template (generation prompt on)."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


def add_prompts(dataset: Dataset, tokenizer: Any, template: PromptTemplate | None = None) -> Dataset:
    """``dataset`` with a ``prompt`` column built from ``question`` (what TRL's ``GRPOTrainer`` reads)."""
    template = template or PromptTemplate()
    prompts = [build_prompt(q, tokenizer, template) for q in dataset["question"]]
    if "prompt" in dataset.column_names:
        dataset = dataset.remove_columns("prompt")
    return dataset.add_column("prompt", prompts)
