"""Data loaders (benchmarks, JSONL, Parquet; errors that name file, line and field) and prompt templates."""

from __future__ import annotations

import json

import pytest
from markers import needs_data

from oarl.lab.math.data import DataError, data_dir, gsm8k_final_answer, load_dataset_spec, load_records
from oarl.lab.math.prompts import (
    DEFAULT_INSTRUCTION,
    PromptTemplate,
    add_prompts,
    build_prompt,
    render_prompt,
)
from oarl.lab.testbed.tiny_math import CHATML_TEMPLATE, build_math_tokenizer


def write_jsonl(path, lines):
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


@needs_data
def test_benchmarks_load_with_references():
    gsm = load_dataset_spec("gsm8k")
    assert len(gsm) == 1319 and {"question", "answer", "solution"} <= set(gsm.column_names)
    assert gsm[0]["answer"] == "18" and gsm[0]["solution"].endswith("#### 18")
    assert len(load_dataset_spec("gsm8k_train", limit=5)) == 5
    math500 = load_dataset_spec("math500")
    assert len(math500) == 500 and math500[0]["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert math500[0]["question"].startswith("Convert the point") and "level" in math500.column_names


def test_data_dir_is_configurable_and_missing_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("OARL_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="OARL_DATA_DIR"):
        data_dir(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="gsm8k_test.jsonl"):
        load_dataset_spec("gsm8k")  # the folder exists, the file does not


def test_user_jsonl_with_own_field_names_and_numeric_answers(tmp_path):
    path = write_jsonl(
        tmp_path / "mine.jsonl",
        [
            {"problem": "1+1?", "final": 2},
            "",
            {"problem": "half?", "final": 0.5},
            {"problem": "x", "final": 7.0},
        ],
    )
    ds = load_records(path, question_field="problem", answer_field="final")
    assert ds["question"] == ["1+1?", "half?", "x"] and ds["answer"] == [
        "2",
        "0.5",
        "7",
    ]  # blank line: no record
    same = load_dataset_spec(str(path), question_field="problem", answer_field="final", limit=2)
    assert same["answer"] == ["2", "0.5"]


@pytest.mark.parametrize(
    "lines, line, field, message",
    [
        ([{"question": "a", "answer": "1"}, '{"question": "b", "answer": '], 2, None, "not valid JSON"),
        ([{"question": "a", "answer": "1"}, {"question": "b"}], 2, "answer", "missing"),
        ([{"question": "a", "answer": None}], 1, "answer", "null"),
        ([{"question": ["a"], "answer": "1"}], 1, "question", "list"),
        ([{"question": "a", "answer": True}], 1, "answer", "bool"),
        ([{"question": "a", "answer": "1"}, "[1, 2]"], 2, None, "JSON object"),
    ],
)
def test_bad_records_name_file_line_and_field(tmp_path, lines, line, field, message):
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(DataError, match=message) as err:
        load_records(path)
    assert err.value.line == line and err.value.field == field and err.value.path == str(path)
    assert f"line {line}" in str(err.value) and "bad.jsonl" in str(err.value)


def test_parquet_and_its_errors(tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"q": ["a", "b"], "a": [3, 4]}).to_parquet(str(tmp_path / "ok.parquet"))
    ds = load_records(tmp_path / "ok.parquet", question_field="q", answer_field="a")
    assert ds["answer"] == ["3", "4"]
    Dataset.from_dict({"q": ["a", "b"], "a": ["3", None]}).to_parquet(str(tmp_path / "bad.parquet"))
    with pytest.raises(DataError, match=r"bad.parquet, line 2, field 'a'"):
        load_records(tmp_path / "bad.parquet", question_field="q", answer_field="a")
    with pytest.raises(DataError, match="missing"):
        load_records(tmp_path / "ok.parquet")  # no "question" column


def test_gsm8k_answer_transform_errors_are_located(tmp_path):
    assert gsm8k_final_answer("a\n#### 1,000") == "1,000"
    path = write_jsonl(
        tmp_path / "g.jsonl", [{"question": "q", "answer": "x\n#### 3"}, {"question": "q", "answer": "x"}]
    )
    with pytest.raises(DataError, match="line 2, field 'answer'.*####"):
        load_records(path, answer_transform=gsm8k_final_answer)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset_spec("gsm9k")


@pytest.fixture(scope="module")
def chat_tok():
    return build_math_tokenizer(["Natalia sold clips.", "#### 72", DEFAULT_INSTRUCTION], vocab_size=300)


def test_chat_template_prompt_matches_what_trl_renders(chat_tok):
    assert chat_tok.chat_template == CHATML_TEMPLATE
    prompt = build_prompt("How many clips?", chat_tok)
    assert prompt == [{"role": "user", "content": f"How many clips?\n{DEFAULT_INSTRUCTION}"}]
    text = render_prompt(prompt, chat_tok)
    assert text == chat_tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n") and "\\boxed{}" in text
    with_system = build_prompt("q", chat_tok, PromptTemplate(style="chat", system_prompt="Be brief."))
    assert with_system[0] == {"role": "system", "content": "Be brief."}


def test_plain_and_raw_templates(chat_tok):
    plain = build_prompt("2+2?", chat_tok, PromptTemplate(style="plain"))
    assert plain == f"Question: 2+2?\n{DEFAULT_INSTRUCTION}\nAnswer: "
    custom = PromptTemplate(
        style="plain", instruction="Show work.", plain_format="Q: {question} ({instruction})\nA:"
    )
    assert build_prompt("2+2?", chat_tok, custom) == "Q: 2+2? (Show work.)\nA:"
    assert build_prompt("a=1;?a\n", chat_tok, PromptTemplate(style="raw")) == "a=1;?a\n"
    chat_tok_without = build_math_tokenizer(["x"], vocab_size=270)
    chat_tok_without.chat_template = None
    assert isinstance(build_prompt("q", chat_tok_without), str)  # auto -> plain without a chat template
    with pytest.raises(ValueError, match="chat template"):
        build_prompt("q", chat_tok_without, PromptTemplate(style="chat"))
    with pytest.raises(ValueError, match="prompt style"):
        PromptTemplate(style="fancy")


def test_add_prompts_builds_the_trl_prompt_column(chat_tok):
    from datasets import Dataset

    ds = add_prompts(Dataset.from_dict({"question": ["a?", "b?"], "answer": ["1", "2"]}), chat_tok)
    assert ds[1]["prompt"] == [{"role": "user", "content": f"b?\n{DEFAULT_INSTRUCTION}"}]
    assert ds["answer"] == ["1", "2"]
