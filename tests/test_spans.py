import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from oarl.batch.spans import completion_span_masks, find_answer, find_answer_span, token_char_offsets


def answer_of(text: str) -> str | None:
    span = find_answer_span(text)
    return None if span is None else text[span[0] : span[1]]


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so x = 3, thus \boxed{42}.", "42"),
        (r"\boxed{\frac{1}{2}} is it", r"\frac{1}{2}"),
        (r"first \boxed{1} then \boxed{2}", "2"),
        ("Natalia sold 48/2 = 24 clips.\n#### 72", "72"),
        ("#### 1,000\n", "1,000"),
        ("We add them. The answer is 17.", "17"),
        ("so the final answer is: $x^2$", "x^2"),
        ("c=10;e=14;ANSWER 14", "14"),
        ("c=10;ANSWER -3<eos>", "-3"),
        ("The answer is 5. Wait, \\boxed{6}", "6"),
        ("no final answer here", None),
        (r"unbalanced \boxed{12", None),
        ("", None),
    ],
)
def test_find_answer_span(text, expected):
    assert answer_of(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_span_is_inside_text_for_any_string(text):
    span = find_answer_span(text)
    if span is not None:
        assert 0 <= span[0] < span[1] <= len(text)


def test_unknown_finder_is_an_error():
    with pytest.raises(ValueError, match="unknown span finder"):
        find_answer_span("x", ["boxed", "nope"])


class CharTokenizer:
    """A minimal slow tokenizer (no offsets): each char is a token, ids = ord."""

    def decode(self, ids, **_):
        return "".join(chr(i) for i in ids)

    def batch_decode(self, seqs, **_):
        return [self.decode(s) for s in seqs]

    def __call__(self, *a, **k):
        raise NotImplementedError


def test_offsets_fallback_and_masks():
    tok = CharTokenizer()
    text = "a=1;ANSWER 7"
    ids = [ord(c) for c in text] + [0, 0]
    decoded, offsets = token_char_offsets(tok, ids[: len(text)])
    assert decoded == text and offsets[4] == (4, 5)
    cids = torch.tensor([ids, [ord(c) for c in "no span here"] + [0, 0]])
    cmask = torch.tensor([[1] * len(text) + [0, 0], [1] * 12 + [0, 0]])
    m = completion_span_masks(tok, cids, cmask)
    assert m.found.tolist() == [True, False]
    assert m.answer[0].nonzero().flatten().tolist() == [11]
    assert m.reasoning[0].nonzero().flatten().tolist() == list(range(4))  # "a=1;" precedes the marker
    assert not m.reasoning[1].any() and not m.answer[1].any()


def test_answer_marker_is_neither_reasoning_nor_answer():
    """The marker (``ANSWER ``, ``\\boxed{``) sits at probe positions: it must not be scored as reasoning."""

    for text, marker in [("e=13;ANSWER 13", "ANSWER "), ("so x=4 \\boxed{4}", "\\boxed{")]:
        ids = [ord(c) for c in text]
        m = completion_span_masks(
            CharTokenizer(), torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)
        )
        start = text.index(marker)
        assert m.reasoning[0].nonzero().flatten().tolist() == list(range(start))
        answer_start = start + len(marker)
        assert m.answer[0].nonzero().flatten().tolist()[0] == answer_start
        assert find_answer(text)[0] == start
