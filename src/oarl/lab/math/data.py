"""Math datasets as Hugging Face ``datasets``: the local GSM8K / MATH500 copies and any JSONL or Parquet file.

Every loader returns a :class:`datasets.Dataset` with at least ``question`` (str) and ``answer`` (str, the
reference final answer that :mod:`oarl.lab.math.rewards` compares against); the benchmark loaders add ``solution``
(the worked reference solution) and their own metadata. Records are validated as they are read: a line that
is not a JSON object, a missing field or a null / non-scalar value raises :class:`DataError` naming the file,
the line (1-based; the row for Parquet) and the field. Nothing is skipped silently (only blank lines, which
hold no record). Nothing is downloaded: the benchmarks are read from a local folder (see :func:`data_dir`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset

DATA_DIR_ENV = "OARL_DATA_DIR"
#: The repository's ``../shared/data`` (next to the checkout); the default data folder.
REPO_DATA_DIR = Path(__file__).resolve().parents[4].parent / "shared" / "data"  # src/oarl/lab/math/data.py
BENCHMARKS = ("gsm8k", "gsm8k_train", "math500")


class DataError(ValueError):
    """A record that cannot be used, located by file, line (or row) and field."""

    def __init__(self, path: str | Path, line: int | None, field: str | None, problem: str) -> None:
        where = f"{path}" + (f", line {line}" if line is not None else "")
        where += f", field {field!r}" if field is not None else ""
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.field = str(path), line, field


def data_dir(path: str | Path | None = None) -> Path:
    """The folder holding the benchmark JSONL files.

    ``path`` if given, else ``$OARL_DATA_DIR``, else the repository's ``../shared/data``. Raises
    ``FileNotFoundError`` saying where it looked and how to point elsewhere when the folder is missing.
    """
    chosen = path or os.environ.get(DATA_DIR_ENV) or REPO_DATA_DIR
    folder = Path(chosen).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"data folder {folder} does not exist; it should hold gsm8k_train.jsonl, gsm8k_test.jsonl and "
            f"math500_test.jsonl. Pass data_dir=... (CLI: --data_dir DIR) or set ${DATA_DIR_ENV}."
        )
    return folder


def _scalar_text(value: Any, path: Path, line: int, field: str) -> str:
    """A question / answer value as text: strings as they are, numbers printed; anything else is an error."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or not isinstance(value, (int, float)):
        kind = "null" if value is None else type(value).__name__
        raise DataError(path, line, field, f"expected a string or a number, got {kind}")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 18.0 -> "18": Parquet/pandas turn integer columns with gaps into floats
    return str(value)


def _read_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    path, number, None, f"not valid UTF-8 (byte {e.start + 1} of the line)"
                ) from None
            if not text.strip():
                continue  # a blank line holds no record
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(path, number, None, f"not valid JSON ({e.msg} at column {e.colno})") from None
            except ValueError as e:  # e.g. an integer longer than Python's 4300-digit limit
                raise DataError(path, number, None, f"not readable JSON ({e})") from None
            if not isinstance(record, dict):
                raise DataError(path, number, None, f"expected a JSON object, got {type(record).__name__}")
            yield number, record


def _read_parquet(path: Path) -> Iterable[tuple[int, dict]]:
    from datasets import Dataset

    table = Dataset.from_parquet(str(path), keep_in_memory=True)
    yield from enumerate(table, start=1)


def load_records(
    path: str | Path,
    question_field: str = "question",
    answer_field: str = "answer",
    answer_transform: Callable[[str], str] | None = None,
    keep_fields: Iterable[str] = (),
    raw_answer_column: str | None = None,
) -> Dataset:
    """Load a JSONL (``.jsonl``/``.json`` lines) or Parquet file into a ``Dataset`` of question/answer rows.

    Args:
        path: the file.
        question_field, answer_field: names of the fields holding the question and the reference answer
            (strings or numbers; numbers are printed, ``18.0`` as ``18``).
        answer_transform: applied to the answer text (e.g. take the part after ``####``); a ``ValueError``
            it raises is reported with the file, line and field.
        keep_fields: further fields to carry over as columns (must be present in every record).
        raw_answer_column: if given, the answer text before ``answer_transform`` is kept in this column.

    Returns:
        A ``Dataset`` with columns ``question``, ``answer`` and the ``keep_fields``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    reader = _read_parquet if path.suffix.lower() in (".parquet", ".pq") else _read_jsonl
    keep = [f for f in keep_fields if f not in (question_field, answer_field)]
    columns: dict[str, list] = {"question": [], "answer": [], **{f: [] for f in keep}}
    raw: list[str] = []
    for line, record in reader(path):
        for name in (question_field, answer_field, *keep):
            if name not in record:
                raise DataError(path, line, name, f"missing (the record has {sorted(record)})")
        question = _scalar_text(record[question_field], path, line, question_field)
        if not question.strip():  # an empty prompt would fail deep inside generate, or train on nothing
            raise DataError(path, line, question_field, "empty or whitespace only (a prompt needs text)")
        columns["question"].append(question)
        answer = _scalar_text(record[answer_field], path, line, answer_field)
        raw.append(answer)
        if answer_transform is not None:
            try:
                answer = answer_transform(answer)
            except ValueError as e:
                raise DataError(path, line, answer_field, str(e)) from None
        columns["answer"].append(answer)
        for name in keep:
            columns[name].append(record[name])
    if not columns["question"]:
        raise DataError(path, None, None, "no records")
    if raw_answer_column is not None:
        columns[raw_answer_column] = raw
    from datasets import Dataset

    return Dataset.from_dict(columns)


def gsm8k_final_answer(solution: str) -> str:
    """The reference answer of a GSM8K worked solution: the text after its last ``####``."""
    final = solution.rsplit("####", 1)[1].strip() if "####" in solution else ""
    if not final:
        raise ValueError("no '#### <answer>' line in the GSM8K solution")
    return final


def load_gsm8k(split: str = "test", data_dir_path: str | Path | None = None) -> Dataset:
    """GSM8K ``split`` ("train" or "test"): ``question``, ``answer`` (after ``####``), ``solution``."""
    if split not in ("train", "test"):
        raise ValueError(f"GSM8K split must be 'train' or 'test', got {split!r}")
    path = data_dir(data_dir_path) / f"gsm8k_{split}.jsonl"
    return load_records(path, "question", "answer", gsm8k_final_answer, raw_answer_column="solution")


def load_math500(data_dir_path: str | Path | None = None) -> Dataset:
    """MATH500: ``question`` (the problem), ``answer``, ``solution``, ``subject``, ``level``, ``unique_id``."""
    path = data_dir(data_dir_path) / "math500_test.jsonl"
    return load_records(path, "problem", "answer", keep_fields=("solution", "subject", "level", "unique_id"))


def load_dataset_spec(
    spec: str,
    data_dir_path: str | Path | None = None,
    question_field: str = "question",
    answer_field: str = "answer",
    limit: int | None = None,
) -> Dataset:
    """A benchmark by name (``gsm8k`` = GSM8K test, ``gsm8k_train``, ``math500``) or a JSONL/Parquet path.

    ``limit`` keeps the first rows only (``None``: all).
    """
    if spec == "gsm8k":
        ds = load_gsm8k("test", data_dir_path)
    elif spec == "gsm8k_train":
        ds = load_gsm8k("train", data_dir_path)
    elif spec == "math500":
        ds = load_math500(data_dir_path)
    elif Path(spec).suffix or Path(spec).exists():
        ds = load_records(spec, question_field, answer_field)
    else:
        raise ValueError(f"unknown dataset {spec!r}: expected one of {BENCHMARKS} or a .jsonl/.parquet path")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        ds = ds.select(range(min(limit, len(ds))))
    return ds
