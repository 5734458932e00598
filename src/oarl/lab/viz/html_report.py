"""Self-contained HTML view of an :class:`oarl.lab.viz.attribution.Attribution` (inline CSS/JS, opens offline).

Each reasoning token is shaded by its weight ``w_t`` (white = 1, red = boosted, blue = suppressed, one scale
for the whole page); the answer span is outlined, oracle causal tokens are underlined in green. Every token
carries ``data-score`` (raw scorer output), ``data-norm`` (the gate's normalised score) and ``data-weight``
(the final weight); hovering shows them for every method at that position. All model text is escaped.
"""

from __future__ import annotations

import html
import math

from oarl.batch.settings import method_label
from oarl.lab.viz.attribution import NO_SPAN_NOTE, Attribution, MethodResult, RowView, TokenView, no_span_help
from oarl.lab.viz.palette import dark, weight_rgb

CSS = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--soft:#eaeef2;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
 font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue","DejaVu Sans",sans-serif}
main{max-width:1380px;margin:0 auto;padding:22px 28px 36px}
h1{font-size:21px;margin:0 0 2px;font-weight:650}
h2{font-size:15px;margin:0 0 8px;font-weight:600}
.sub{color:var(--muted);font-size:13px}
.top{display:flex;gap:28px;align-items:flex-start;flex-wrap:wrap;margin:14px 0 6px}
.legend{display:flex;flex-direction:column;gap:8px;font-size:12.5px;color:var(--muted)}
.scale{display:flex;align-items:center;gap:8px}
.bar{width:240px;height:12px;border-radius:3px;border:1px solid var(--line)}
.key{display:inline-flex;align-items:center;gap:6px;margin-right:14px}
.swatch{display:inline-block;width:22px;height:14px;border-radius:2px;background:#fff}
table{border-collapse:collapse;background:#fff;border:1px solid var(--line);font-size:13px}
th,td{padding:5px 12px;border-bottom:1px solid var(--soft);text-align:right;font-variant-numeric:tabular-nums}
th{background:var(--bg);font-weight:600;color:var(--muted)}
td:first-child,th:first-child{text-align:left}
.example{background:#fff;border:1px solid var(--line);border-radius:8px;margin:16px 0;padding:14px 16px}
.prompt{margin:0 0 10px;padding:6px 10px;background:var(--bg);border-radius:6px}
.prompt .lab{font:600 11px system-ui,sans-serif;color:var(--muted);text-transform:uppercase;margin-right:8px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:12px}
.card{border:1px solid var(--soft);border-radius:6px;padding:8px 10px 10px}
.card h3{margin:0 0 6px;font-size:14px;font-weight:650}
.chips{display:block;font-weight:400;font-size:12px;color:var(--muted);font-variant-numeric:tabular-nums}
.text{font:14.5px/2.1 ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;
 white-space:pre-wrap;overflow-wrap:anywhere}
.tok{padding:3px 1px;border-radius:2px}
.tok.prompt{color:var(--muted);padding:0}
.tok.oracle{box-shadow:inset 0 -3px 0 #1a7f37}
.ans{outline:1.5px solid var(--fg);outline-offset:1px;border-radius:2px}
.tok.nl::before{content:"\\21B5";color:#8c959f}
.tok.hl{outline:2px solid #bf8700;outline-offset:0}
.note{font-size:12px;color:#9a6700;margin-top:4px}
#tip{position:fixed;z-index:9;display:none;pointer-events:none;background:#1f2328;color:#fff;
 border-radius:6px;padding:7px 9px;font-size:12px;box-shadow:0 4px 14px rgba(0,0,0,.25)}
#tip table{background:none;border:0;color:#fff;font-size:12px}
#tip td,#tip th{border:0;padding:1px 6px;background:none;color:#fff}
#tip .tt{font-family:ui-monospace,monospace;margin-bottom:3px}
footer{color:var(--muted);font-size:12px;margin-top:18px}
"""

JS = """
(function(){
var tip=document.getElementById('tip');
document.querySelectorAll('.tok[title]').forEach(function(e){e.dataset.title=e.title;e.removeAttribute('title');});
function clear(){document.querySelectorAll('.tok.hl').forEach(function(e){e.classList.remove('hl');});}
function cell(row,tag,text){var c=document.createElement(tag);c.textContent=text;row.appendChild(c);}
document.addEventListener('mouseover',function(ev){
  clear();var t=ev.target.closest?ev.target.closest('.tok[data-method]'):null;
  if(!t){tip.style.display='none';return;}
  var same=t.closest('.example').querySelectorAll('.tok[data-method][data-i="'+t.dataset.i+'"]');
  var table=document.createElement('table');var head=document.createElement('tr');
  ['method','score','normalised','weight'].forEach(function(h){cell(head,'th',h);});table.appendChild(head);
  same.forEach(function(s){s.classList.add('hl');var r=document.createElement('tr');
    cell(r,'td',s.dataset.label);cell(r,'td',(+s.dataset.score).toPrecision(4));
    cell(r,'td',(+s.dataset.norm).toFixed(3));cell(r,'td',(+s.dataset.weight).toFixed(3));table.appendChild(r);});
  var title=document.createElement('div');title.className='tt';
  title.textContent=JSON.stringify(t.textContent)+'  '+t.dataset.role+(t.classList.contains('oracle')?', oracle causal':'');
  tip.replaceChildren(title,table);tip.style.display='block';
});
document.addEventListener('mousemove',function(ev){
  var x=Math.min(ev.clientX+14,window.innerWidth-tip.offsetWidth-8);
  var y=ev.clientY+18+tip.offsetHeight>window.innerHeight?ev.clientY-tip.offsetHeight-12:ev.clientY+18;
  tip.style.left=x+'px';tip.style.top=y+'px';
});
})();
"""


def esc(text: object) -> str:
    """HTML-escape anything (quotes too, so it is safe in attributes)."""
    return html.escape(str(text), quote=True)


def num(x: float) -> str:
    """A float as written into ``data-*`` attributes (9 significant digits: float32 round-trips)."""
    return format(float(x), ".9g")


def weight_range(att: Attribution) -> tuple[float, float]:
    """Least and greatest weight of any reasoning token on the page (1.0 when there is none)."""
    mask = att.batch["reasoning_mask"].bool()
    ws = [r.weights[mask] for r in att.methods.values() if mask.any()]
    lo = min([float(w.min()) for w in ws] + [1.0])
    hi = max([float(w.max()) for w in ws] + [1.0])
    return lo, hi


def shade(w: float, lo: float, hi: float) -> str:
    """Inline style for weight ``w``: white at 1, toward red up to ``hi``, toward blue down to ``lo``."""
    r, g, b = weight_rgb(w, lo, hi)
    fg = ";color:#fff" if dark(w, lo, hi) else ""
    return f"background:rgb({r},{g},{b}){fg}"


def _nanmean(values: list[float]) -> float:
    v = [x for x in values if not math.isnan(x)]
    return sum(v) / len(v) if v else math.nan


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _token(tok: TokenView, b: int, method: str | None, res: MethodResult | None, lo: float, hi: float) -> str:
    classes = ["tok", tok.role] + (["oracle"] if tok.oracle else []) + (["nl"] if "\n" in tok.text else [])
    attrs = [f'class="{" ".join(classes)}"', f'data-i="{tok.column}"']
    if method is not None and res is not None:
        score = float(res.scores[b, tok.column])
        norm = float(res.normalised[b, tok.column])
        weight = float(res.weights[b, tok.column])
        label = method_label(method)
        attrs += [
            f'data-method="{esc(method)}"',
            f'data-label="{esc(label)}"',
            f'data-role="{tok.role}"',
            f'data-score="{num(score)}"',
            f'data-norm="{num(norm)}"',
            f'data-weight="{num(weight)}"',
            f'title="{esc(f"{label}: score {score:.4g} | normalised {norm:.3f} | weight {weight:.3f}")}"',
        ]
        if tok.role == "reasoning":
            attrs.append(f'style="{shade(weight, lo, hi)}"')
    return f"<span {' '.join(attrs)}>{esc(tok.text)}</span>"


def _completion(row: RowView, b: int, method: str, res: MethodResult, lo: float, hi: float) -> str:
    """Completion tokens; consecutive answer-span tokens are wrapped in one outlined ``.ans`` box.

    ``<wbr>`` between tokens lets lines break between tokens only (a token longer than a line still wraps).
    """
    out, in_answer = [], False
    for i, tok in enumerate(row.completion):
        if i:
            out.append("<wbr>")
        if (tok.role == "answer") != in_answer:
            out.append('<span class="ans">' if not in_answer else "</span>")
            in_answer = not in_answer
        out.append(_token(tok, b, method, res, lo, hi))
    return "".join(out) + ("</span>" if in_answer else "")


def _chips(res: MethodResult, b: int, found: bool = True) -> str:
    if not found:
        return NO_SPAN_NOTE
    parts = [f"ESS {_fmt(float(res.ess_ratio[b]))}", f"top-10% {_fmt(float(res.top10_share[b]))}"]
    if res.recall is not None and res.auroc is not None:
        parts += [f"recall@k {_fmt(float(res.recall[b]), 2)}", f"AUROC {_fmt(float(res.auroc[b]), 2)}"]
    return " · ".join(parts)


def _summary(att: Attribution) -> str:
    found = [b for b, r in enumerate(att.rows) if r.found]
    cols = ["method", "ESS-ratio", "top-10% share"] + (["recall@k", "AUROC"] if att.has_oracle else [])
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = []
    for method, res in att.methods.items():
        cells = [res.ess_ratio, res.top10_share] + ([res.recall, res.auroc] if att.has_oracle else [])
        vals = "".join(f"<td>{_fmt(_nanmean([float(c[b]) for b in found]))}</td>" for c in cells)
        body.append(f"<tr><td><b>{esc(method_label(method))}</b></td>{vals}</tr>")
    caption = f"mean over the {len(found)} of {len(att.rows)} completions with an answer span"
    return f'<div><table><tr>{head}</tr>{"".join(body)}</table><div class="sub">{caption}</div></div>'


def _legend(lo: float, hi: float) -> str:
    left, right = shade(lo, lo, hi).split(";")[0], shade(hi, lo, hi).split(";")[0]
    bar = f"background:linear-gradient(90deg,{left.split(':')[1]},#fff,{right.split(':')[1]})"
    return (
        '<div class="legend"><div class="scale">'
        f'<span>suppressed {lo:.2f}</span><span class="bar" style="{bar}"></span><span>{hi:.2f} boosted</span>'
        "</div><div>"
        '<span class="key"><span class="swatch" style="box-shadow:inset 0 -3px 0 #1a7f37"></span>oracle causal</span>'
        '<span class="key"><span class="swatch" style="outline:1.5px solid #1f2328"></span>answer span</span>'
        '<span class="key"><span class="swatch" style="background:#fff;border:1px solid #d0d7de"></span>'
        "weight 1 / not scored</span></div>"
        "<div>hover a token: raw score, normalised score and weight of every method</div></div>"
    )


def render_html(att: Attribution, title: str = "Token credit", subtitle: str = "") -> str:
    """The whole page as one string: header, legend, per-method summary and one section per example."""
    lo, hi = weight_range(att)
    m = att.meta
    gate = f"probe {m.get('probe')} · gate τ={m.get('tau')} β={m.get('beta')} floor={m.get('floor')}"
    sections = []
    for b, row in enumerate(att.rows):
        prompt = "<wbr>".join(_token(t, b, None, None, lo, hi) for t in row.prompt)
        cards = "".join(
            f'<div class="card" data-method="{esc(method)}"><h3><span>{esc(method_label(method))}'
            f'</span><span class="chips">{_chips(res, b, row.found)}</span></h3>'
            f'<div class="text">{_completion(row, b, method, res, lo, hi)}</div></div>'
            for method, res in att.methods.items()
        )
        note = (
            ""
            if row.found
            else f'<div class="note">{NO_SPAN_NOTE}: every weight is 1 ({esc(no_span_help())})</div>'
        )
        sections.append(
            f'<section class="example" data-row="{b}"><h2>{esc(row.title)}</h2>'
            f'<div class="prompt text"><span class="lab">prompt</span>{prompt}</div>'
            f'<div class="grid">{cards}</div>{note}</section>'
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        f'<h1>{esc(title)}</h1><div class="sub">{esc(subtitle)}{" · " if subtitle else ""}{esc(gate)}</div>'
        f'<div class="top">{_summary(att)}{_legend(lo, hi)}</div>'
        f"{''.join(sections)}"
        "<footer>oarl attribute · weights w<sub>t</sub> = bilevel_weights(score), Σ<sub>t</sub> w<sub>t</sub> = T "
        "over the reasoning tokens · ESS-ratio = (Σw)²/(T Σw²) · top-10% = share of Σw in the top 10% tokens"
        f'</footer></main><div id="tip"></div><script>{JS}</script></body></html>\n'
    )
