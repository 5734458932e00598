"""`oarl attribute`: scores per method, escaped self-contained HTML whose numbers match the API, PNG, CLI."""

from __future__ import annotations

import json
import string
from html.parser import HTMLParser

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from oarl import bilevel_weights, get_scorer
from oarl.cli import attribute as attribute_cmd
from oarl.core.scorers import shared_options
from oarl.lab.viz.attribution import attribute, encode_pairs, normalised_scores, offset_pieces
from oarl.lab.viz.html_report import render_html
from oarl.lab.viz.plots import attribution_strip

METHODS = ["perturbation", "gradient", "entropy", "random"]
PROMPTS = ["q=<b>1</b> & 'x' \"y\"\n", "a=3;b=7;c=a+b;?c\n"]
COMPLETIONS = ["<script>alert('x')</script> so c=2; ANSWER 5", "c=10;\n ANSWER 10"]


def ascii_tokenizer():
    """Character-level fast tokenizer over printable ASCII (plus ``ANSWER``): markup survives encoding."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [c for c in string.printable if c not in "\x0b\x0c\r"]
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<unk>", "ANSWER", *chars])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"ANSWER|[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(["<pad>", "<eos>", "<unk>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<eos>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
    )


@pytest.fixture(scope="module")
def tiny():
    tok = ascii_tokenizer()
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return Qwen2ForCausalLM(cfg).eval(), tok


@pytest.fixture(scope="module")
def report(tiny):
    model, tok = tiny
    att = attribute(model, tok, PROMPTS, COMPLETIONS, METHODS, seed=3)
    return att, render_html(att, "t <i>", subtitle="model <path>")


VOID = {"meta", "wbr", "br", "img", "link", "input", "hr"}  # no end tag: not pushed on the stack


class TokenSpans(HTMLParser):
    """Collects every ``.tok`` span: its attributes and text, with the example and card it sits in."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens, self.stack, self.row, self.card = [], [], None, None

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            return
        a = dict(attrs)
        if tag == "section":
            self.row = int(a["data-row"])
        if tag == "div" and "card" in a.get("class", "").split():
            self.card = a["data-method"]
        if tag == "div" and "prompt" in a.get("class", "").split():
            self.card = None
        is_tok = tag == "span" and "tok" in a.get("class", "").split()
        if is_tok:
            self.tokens.append({**a, "row": self.row, "card": self.card, "text": ""})
        self.stack.append(is_tok)

    def handle_endtag(self, tag):
        self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1]:
            self.tokens[-1]["text"] += data


def parse(html: str) -> list[dict]:
    p = TokenSpans()
    p.feed(html)
    return p.tokens


def test_html_escapes_model_text_and_is_self_contained(report):
    _, html = report
    assert "<script>alert" not in html and "<b>1</b>" not in html and "<path>" not in html
    for escaped in ("&lt;", "&gt;", "&amp;", "&#x27;", "&quot;"):  # one character per token here
        assert f">{escaped}</span>" in html
    assert "t &lt;i&gt;" in html and "model &lt;path&gt;" in html
    assert html.count("<script") == 1  # the page's own inline script only
    assert "http://" not in html and "https://" not in html and " src=" not in html  # no external assets
    tokens = parse(html)
    shown = "".join(t["text"] for t in tokens if t["row"] == 0 and t["card"] == "perturbation")
    assert shown == COMPLETIONS[0]  # the parser gives back the literal model text


def test_every_token_appears_once(report, tiny):
    att, html = report
    _, tok = tiny
    tokens = parse(html)
    for b, (prompt, completion) in enumerate(zip(PROMPTS, COMPLETIONS, strict=True)):
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        n_completion = len(tok(completion, add_special_tokens=False)["input_ids"])
        in_prompt = [t for t in tokens if t["row"] == b and t["card"] is None]
        assert "".join(t["text"] for t in in_prompt) == prompt
        assert len(in_prompt) == n_prompt
        for method in METHODS:
            card = [t for t in tokens if t["row"] == b and t["card"] == method]
            assert "".join(t["text"] for t in card) == completion
            cols = [int(t["data-i"]) for t in card]
            assert len(cols) == len(set(cols)) == n_completion
            assert cols == sorted(cols)


def test_weights_in_html_match_api(report, tiny):
    att, html = report
    model, tok = tiny
    batch = encode_pairs(tok, PROMPTS, COMPLETIONS)
    layout = [batch[k] for k in ("input_ids", "attention_mask", "reasoning_mask", "answer_mask")]
    tokens = parse(html)
    checked = 0
    for method in METHODS:
        gen = torch.Generator().manual_seed(3)
        scores = get_scorer(method)(model, *layout, generator=gen, **shared_options(method, probe="as_mean"))
        weights = bilevel_weights(scores, batch["reasoning_mask"], tau=0.4, beta=2.0, floor=0.1)
        norm = normalised_scores(scores, batch["reasoning_mask"])
        for t in (t for t in tokens if t["card"] == method):
            b, i = t["row"], int(t["data-i"])
            assert float(t["data-weight"]) == pytest.approx(float(weights[b, i]), abs=1e-6)
            assert float(t["data-score"]) == pytest.approx(float(scores[b, i]), rel=1e-6, abs=1e-9)
            assert float(t["data-norm"]) == pytest.approx(float(norm[b, i]), abs=1e-6)
            assert (t["data-role"] == "reasoning") == bool(batch["reasoning_mask"][b, i])
            checked += 1
    assert checked == len(METHODS) * int((batch["attention_mask"].bool() & ~batch["prompt_mask"]).sum())
    # Boosted tokens are shaded red-ish, suppressed blue-ish.
    reasoning = [t for t in tokens if t.get("data-role") == "reasoning"]
    assert any(float(t["data-weight"]) > 1.2 for t in reasoning)
    assert all("style" in t for t in reasoning)


def test_layout_spans_and_answer_outline(report, tiny):
    att, html = report
    _, tok = tiny
    row = att.rows[1]
    assert "".join(t.text for t in row.completion if t.role == "answer") == "10"
    assert (
        "".join(t.text for t in row.completion if t.role == "reasoning") == "c=10;\n "
    )  # the "ANSWER " marker is neither
    assert html.count('<span class="ans">') == len(PROMPTS) * len(METHODS)
    # Weights keep the mass: sum over reasoning tokens = their count, every method, every row.
    for res in att.methods.values():
        rm = att.batch["reasoning_mask"]
        assert (res.weights * rm).sum(-1).tolist() == pytest.approx(rm.sum(-1).float().tolist(), rel=1e-5)
        assert ((res.ess_ratio > 0) & (res.ess_ratio <= 1 + 1e-6)).all()


def test_normalised_scores_match_the_gate():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(3, 9, generator=g) * 5
    mask = torch.ones(3, 9, dtype=torch.bool)
    mask[1, :4] = False
    scores[2] = 0.7  # constant row -> all zeros
    norm = normalised_scores(scores, mask)
    # Exact zeros: the row minimum is (lo - lo) / spread, and masked-out or constant rows are written as 0.
    assert norm[0].min() == 0 and norm[0].max() == pytest.approx(1.0)
    assert (norm[1, :4] == 0).all() and norm[1, 4:].max() == pytest.approx(1.0)
    assert (norm[2] == 0).all()
    order = scores[0].argsort()
    assert (norm[0][order].diff() >= 0).all()
    raw = bilevel_weights(scores, mask, beta=2.0, rescale=False)
    assert raw[0, norm[0].argmax()] == pytest.approx(3.0)  # the top token gets 1 + beta before rescaling


def test_offset_pieces_join_to_the_text(tiny):
    _, tok = tiny
    text = "x <y> &\n ANSWER 7"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    pieces = offset_pieces(tok, ids)
    assert len(pieces) == len(ids) and "".join(pieces) == text


def test_attribution_strip_wraps_and_draws_dollars(tmp_path):
    tokens = list("$x$=1;") + ["ANSWER", " ", "1"]
    w = {"a": [1.0] * 9, "b": [0.5, 2.0] + [1.0] * 7}
    path = attribution_strip(tokens, w, tmp_path / "s.png", answer=[False] * 8 + [True], wrap=4)
    assert path.stat().st_size > 1000


@pytest.fixture(scope="module")
def saved_model(tiny, tmp_path_factory):
    model, tok = tiny
    d = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_cli_prompt_completion_text_and_data(saved_model, tmp_path):
    out = tmp_path / "a.html"
    args = ["--model", str(saved_model), "--method", "perturbation,random", "--out", str(out)]
    assert attribute_cmd.main([*args, "--prompt", PROMPTS[0], "--completion", COMPLETIONS[0]]) == 0
    assert out.stat().st_size > 0 and out.with_suffix(".png").stat().st_size > 0
    texts = ["--text", "a=1;?a\n a=1; ANSWER 1", "--text", "2\n#### 2"]
    assert attribute_cmd.main([*args, "--no-png", *texts]) == 0
    tokens = parse(out.read_text())
    assert "".join(t["text"] for t in tokens if t["row"] == 1 and t["card"] is None) == "2\n"
    assert "".join(t["text"] for t in tokens if t["row"] == 1 and t["card"] == "random") == "#### 2"
    data = tmp_path / "gsm.jsonl"
    rows = [{"question": "q0?", "answer": "x\n#### 0"}, {"question": "Why <3?", "answer": "so 1+2=3\n#### 3"}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert attribute_cmd.main([*args, "--data", str(data), "--index", "1"]) == 0
    tokens = parse(out.read_text())
    assert "".join(t["text"] for t in tokens if t["card"] is None) == "Why <3?"
    assert attribute_cmd.main([*args, "--data", str(data), "--index", "5"]) == 2
    assert attribute_cmd.main([*args, "--prompt", "p", "--text", "a\nb"]) == 2


def test_cli_text_without_newline_is_all_completion(saved_model, tmp_path, capsys):
    out = tmp_path / "a.html"
    argv = ["--model", str(saved_model), "--method", "perturbation", "--out", str(out), "--no-png"]
    assert attribute_cmd.main([*argv, "--text", "c=4;d=2;ANSWER 2"]) == 0
    assert "empty prompt" in capsys.readouterr().err
    tokens = parse(out.read_text())
    assert not [t for t in tokens if t["card"] is None]  # no prompt tokens
    assert "".join(t["text"] for t in tokens if t["card"] == "perturbation") == "c=4;d=2;ANSWER 2"


def test_oracle_tokens_are_underlined(tiny):
    from oarl.lab.testbed.tasks import arith

    model, tok = tiny
    (p,) = arith.generate_problems(1)
    att = attribute(model, tok, [p.prompt], [p.completion], ["entropy"], oracle=True)
    causal = "".join(p.completion[a:b] for a, b in p.oracle_char_spans)
    assert "".join(t.text for t in att.rows[0].completion if t.oracle) == causal
    html = render_html(att)
    assert html.count("tok reasoning oracle") == len(causal) and "recall@k" in html


def test_cli_task_arith(saved_model, tmp_path):
    out = tmp_path / "arith.html"
    argv = [
        "--model",
        str(saved_model),
        "--task",
        "arith",
        "--num",
        "2",
        "--max-new-tokens",
        "6",
        "--method",
        "entropy",
        "--out",
        str(out),
    ]
    assert attribute_cmd.main(argv) == 0
    html = out.read_text()
    assert html.count('class="example"') == 2 and "held-out problem 1" in html and "recall@k" in html
    assert (tmp_path / "arith-1.png").exists() and (tmp_path / "arith-2.png").exists()


def test_png_and_html_share_one_colour_scale():
    from oarl.lab.viz.html_report import shade
    from oarl.lab.viz.palette import weight_rgb
    from oarl.lab.viz.plots import token_label, weight_cmap

    lo, hi = 0.2, 3.0
    cmap = weight_cmap(lo, hi)
    assert weight_rgb(1.0, lo, hi) == (255, 255, 255)  # integers: weight 1 has strength 0, i.e. white
    for w in (lo, 0.5, 0.9, 1.0, 1.7, hi):
        rgb = weight_rgb(w, lo, hi)
        assert shade(w, lo, hi).startswith(f"background:rgb({rgb[0]},{rgb[1]},{rgb[2]})")
        png = [round(255 * c) for c in cmap((w - lo) / (hi - lo))[:3]]
        assert png == pytest.approx(list(rgb), abs=2)
    assert token_label(" ") == "␣" and token_label("\n") == "⏎" and token_label("$x") == r"\$x"


def test_cli_task_arith_gold_completions(saved_model, tmp_path):
    from oarl.lab.testbed.demo import checkpoint_task

    out = tmp_path / "gold.html"
    argv = [
        "--model",
        str(saved_model),
        "--task",
        "arith",
        "--num",
        "2",
        "--completions",
        "gold",
        "--method",
        "entropy,random",
        "--out",
        str(out),
        "--png",
        str(tmp_path / "g.png"),
    ]
    assert attribute_cmd.main(argv) == 0
    problems = checkpoint_task(saved_model, "arith").problems(2, seed=30_000)
    tokens = parse(out.read_text())
    for b, p in enumerate(problems):
        assert "".join(t["text"] for t in tokens if t["row"] == b and t["card"] == "random") == p.completion
        causal = "".join(p.completion[x:y] for x, y in p.oracle_char_spans)
        oracle = [t for t in tokens if t["row"] == b and t["card"] == "random" and "oracle" in t["class"]]
        assert "".join(t["text"] for t in oracle) == causal
    assert "gold completion" in out.read_text()
    assert (tmp_path / "g-1.png").stat().st_size > 1000 and (tmp_path / "g-2.png").exists()
