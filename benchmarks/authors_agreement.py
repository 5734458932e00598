"""oarl's credit scorers beside their authors' released code (docs/authors.md), on a tiny random model and on
SmolLM2-135M-Instruct rows.

The authors' code runs from the test fixtures in ``tests/authors/<method>/`` (licensed excerpts with their
notices, or adaptations; see each file's header); each ``compare.measure`` returns the agreement numbers.
SmolLM2's inputs: its own 32 x 8 easy-arith generations (docs/real_model/easy_arith_32x8_generations.jsonl)
as groups for the group scorers (KTAE, TreeRL) and for STARE / PRIME / cDPO, the easy-arith pairs
(docs/real_model/easy_arith_pairs.jsonl) for IGPO and VinePPO. PRIME's and cDPO's two models: the base
SmolLM2 and SmolLM2 with oarl's wordop LoRA warm start merged.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/authors_agreement.py --out docs/authors/agreement.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "authors")]

from authors_common import group_batch, random_groups, smollm2_groups  # noqa: E402
from conftest import tiny_lm  # noqa: E402

from oarl.core.layout import Layout  # noqa: E402


def tiny(seed: int = 0) -> dict:
    """Every comparison on tiny random models (the same inputs as tests/authors/test_authors_*.py, one seed)."""
    from cdpo.compare import measure as cdpo
    from igpo.compare import measure as igpo
    from ktae.compare import measure as ktae
    from prime.compare import measure as prime
    from stare.compare import measure as stare
    from treerl.compare import measure as treerl
    from vineppo.compare import measure as vineppo

    gb = group_batch(random_groups(seed=seed))
    gb2 = group_batch(random_groups(n_groups=2, seed=seed))
    g = torch.Generator().manual_seed(seed)
    segs = []
    for _ in range(3):
        s = {k: torch.randint(6, 64, (n,), generator=g).tolist()
             for k, n in zip(("before", "reasoning", "conclude", "answer"), (5, 12, 2, 3), strict=True)}  # fmt: skip
        s["reasoning"][3] = s["reasoning"][7] = 5
        segs.append(s)
    P, R, A = 4, 10, 2
    ids = torch.randint(4, 32, (3, P + R + A), generator=g)
    ids[:, P + 3] = ids[:, P + 7] = 3
    role = torch.tensor([0] * P + [1] * R + [2] * A).expand(3, P + R + A)
    lay = Layout(ids, torch.ones_like(ids), role == 1, role == 2)

    def parity(row, seqs):
        return [float(sum(t < 16 for t in s[P:]) % 2) for s in seqs]

    m16, m16b = tiny_lm("llama", vocab=16, seed=0), tiny_lm("llama", vocab=16, seed=1)
    return {
        "ktae": ktae(gb),
        "treerl": treerl(gb),
        "igpo_per_step": igpo(tiny_lm("llama", vocab=64), segs, (5,)),
        "igpo_per_token": igpo(tiny_lm("llama", vocab=64), segs, ()),
        "vineppo": vineppo(tiny_lm("llama", vocab=32), lay, parity, (3,), eos=2, k=8, max_new_tokens=8),
        "stare_O1": stare(m16, gb2, variant="O1"),
        "stare_C2": stare(m16, gb2, variant="C2"),
        "prime": prime(m16, m16b, gb2),
        "cdpo": cdpo(m16, m16b, gb2),
    }


def smollm2(rows: int, k: int, max_new_tokens: int) -> dict:
    from cdpo.compare import measure as cdpo
    from igpo.compare import measure as igpo
    from ktae.compare import measure as ktae
    from prime.compare import measure as prime
    from stare.compare import measure as stare
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from treerl.compare import measure as treerl
    from vineppo.compare import measure as vineppo

    from oarl.lab.bench.step_ends import SENTENCE_ENDS, step_token_ids
    from oarl.lab.math.rewards import check_answer
    from oarl.lab.models import resolve_model
    from oarl.lab.testbed.lora_warmstart import load_warm_policy

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from paper_fidelity import segments

    path = resolve_model("smollm2-135m")
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    adapter = ROOT / "src/oarl/lab/testbed/checkpoints/wordop-lora-212d42da23fe"
    tuned = load_warm_policy(adapter)[0].float().eval()
    out: dict = {"smollm2_groups": 4}
    gb = group_batch(smollm2_groups(4), pad=int(tok.pad_token_id))
    out["ktae"] = ktae(gb)
    out["treerl"] = treerl(gb)
    gb2 = group_batch(smollm2_groups(2), pad=int(tok.pad_token_id))
    with torch.no_grad():
        out["stare_O1_gate_at_0.3"] = stare(base, gb2, variant="O1", top_p_ratio=0.1, target_entropy=0.3)
        out["stare_O1_gate_on"] = stare(base, gb2, variant="O1", top_p_ratio=0.1)
        out["stare_C2_gate_on"] = stare(base, gb2, variant="C2", top_p_ratio=0.1)
        out["prime_phi_wordop_ref_base"] = prime(tuned, base, gb2)
        out["cdpo_pos_base_neg_wordop"] = cdpo(base, tuned, gb2)
    pairs = [json.loads(x) for x in (ROOT / "docs/real_model/easy_arith_pairs.jsonl").open()]
    segs, refs = [], []
    for p in pairs:
        s = segments(tok, p["prompt"], p["completion"])
        if s is not None and len(s["reasoning"]) >= 4:
            segs.append(s)
            refs.append(str(p["reference"]))
        if len(segs) == rows:
            break
    steps = step_token_ids(tok, sentence_ends=SENTENCE_ENDS)
    with torch.no_grad():
        out["igpo_per_token"] = igpo(base, segs, ())
        out["igpo_per_step"] = igpo(base, segs, steps)
    # VinePPO: the same rows as one right-padded layout, the reward graded by oarl's checker.
    parts = [[s[k] for k in ("before", "reasoning", "conclude", "answer")] for s in segs]
    L = max(sum(map(len, p)) for p in parts)
    ids = torch.full((len(parts), L), int(tok.pad_token_id))
    am = torch.zeros_like(ids)
    rm = torch.zeros(ids.shape, dtype=torch.bool)
    an = torch.zeros_like(rm)
    plen = []
    for b, p in enumerate(parts):
        n = sum(map(len, p))
        ids[b, :n] = torch.tensor(sum(p, []))
        am[b, :n] = 1
        rm[b, len(p[0]) : len(p[0]) + len(p[1])] = True
        an[b, n - len(p[3]) : n] = True
        plen.append(len(p[0]))
    lay = Layout(ids, am, rm, an)

    def reward_fn(row, seqs):
        return [float(bool(check_answer(tok.decode(s[plen[row] :], skip_special_tokens=True), refs[row]).correct))
                for s in seqs]  # fmt: skip

    out["vineppo_per_step"] = vineppo(base, lay, reward_fn, steps, eos=int(tok.eos_token_id), k=k,
                                      max_new_tokens=max_new_tokens)  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=4, help="SmolLM2 pairs for IGPO / VinePPO")
    ap.add_argument("--k", type=int, default=4, help="VinePPO / resample rollouts per state")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--skip-smollm2", action="store_true")
    ap.add_argument("--out", default="docs/authors/agreement.json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    res: dict = {"tiny": tiny()}
    if not a.skip_smollm2:
        res["smollm2"] = smollm2(a.rows, a.k, a.max_new_tokens)
    res.update(seconds=round(time.perf_counter() - t0, 1), torch_threads=1,
               command=f"python benchmarks/authors_agreement.py --rows {a.rows} --k {a.k} "
                       f"--max-new-tokens {a.max_new_tokens}")  # fmt: skip
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_no_nan(res), indent=1)
    Path(a.out).write_text(text + "\n")
    print(text)


def _no_nan(x):
    """NaN (a Spearman on constant ranks) as null, so the file is strict JSON."""
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_no_nan(v) for v in x]
    return None if isinstance(x, float) and x != x else x


if __name__ == "__main__":
    main()
