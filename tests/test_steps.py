"""Step delimiters found in a tokenizer's vocabulary (oarl.lab.bench.step_ends)."""

from oarl.lab.bench.step_ends import SENTENCE_ENDS, step_token_ids
from oarl.lab.testbed import tiny_model


def test_step_token_ids_newline_and_sentence_ends():
    tok = tiny_model.build_tokenizer()
    newline = tok.convert_tokens_to_ids("\n")
    question = tok.convert_tokens_to_ids("?")
    assert step_token_ids(tok) == (newline,)
    assert step_token_ids(tok, sentence_ends=SENTENCE_ENDS) == tuple(sorted({newline, question}))
    assert step_token_ids(tok, newline=False, sentence_ends=("?",)) == (question,)
    assert step_token_ids(tok, newline=False) == ()
