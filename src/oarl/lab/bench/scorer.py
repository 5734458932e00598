"""OAR-P / OAR-G scorer cost against the naive OAR-P baseline (full forward + full logits per masked copy).

Times are medians of interleaved repetitions in one process (the machines are noisy; only ratios measured
side by side are reported). Peak memory is measured in a fresh subprocess per scorer: on CUDA
``max_memory_allocated``, on CPU the growth of peak RSS over the RSS after the model and batch are built.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import torch

from oarl.core.layout import Layout
from oarl.core.scorers import (
    gradient_scores,
    linear_perturbation_scores,
    naive_perturbation_scores,
    perturbation_scores,
)
from oarl.core.scorers.masking.kernel import MAX_BATCH_TOKENS

MODELS = {
    # name: (vocab, hidden, layers, heads, kv_heads, intermediate)
    "tiny": (49, 128, 4, 4, 4, 384),  # the demo's architecture (char-level vocab)
    "qwen2-30m": (32000, 512, 4, 8, 2, 1536),  # a Qwen2-style config with a realistic vocabulary
}


@dataclass
class ScorerCase:
    model: str = "tiny"
    reasoning_len: int = 256
    prompt_len: int = 32
    answer_len: int = 4
    batch: int = 1
    copies_per_forward: int = 32  # the naive baseline's batching of masked copies
    max_batch_tokens: int = MAX_BATCH_TOKENS
    device: str = "cpu"


def build_model(name: str, device: str = "cpu") -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    vocab, hidden, layers, heads, kv, inter = MODELS[name]
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv, intermediate_size=inter, max_position_embeddings=4096,
        tie_word_embeddings=True, pad_token_id=0,
    )  # fmt: skip
    return Qwen2ForCausalLM(cfg).to(device).eval()


def exact_compute_limit(case: ScorerCase) -> dict[str, float]:
    """The speed-up over the naive baseline that exact OAR-P can reach at most, from multiply-accumulates.

    Naive: every masked copy is a full forward of all ``L`` positions with logits at every position. Exact
    limit: one clean forward, then a copy masked at ``t`` recomputes only positions ``t .. p_max`` (the last
    probe position) and applies the LM head only at the ``K`` probe positions. Per token of a layer:
    q/k/v/o projections and the MLP, plus ``2 * context * hidden`` for attention scores and values.
    Returns ``{"naive_macs", "exact_macs", "limit"}``; ``limit = naive / exact`` (a measured OAR-P speed-up
    should stay at >= 0.8 of it: the regression guard ``oarl bench`` prints).
    """
    vocab, d, layers, heads, kv, inter = MODELS[case.model]
    P, T, A = case.prompt_len, case.reasoning_len, case.answer_len
    L = P + T + A
    linear = d * d * 2 + 2 * d * (d // heads * kv) + 3 * d * inter

    def span(a: int, b: int) -> float:  # MACs of positions a..b-1 (0-based), all layers
        n = b - a
        ctx = (a + 1 + b) * n / 2  # sum of (pos + 1)
        return layers * (linear * n + 2 * d * ctx)

    K = A  # as_mean probe: one position per answer token
    p_max = L - 2
    naive = T * (span(0, L) + L * vocab * d) + span(0, L) + L * vocab * d  # + the clean forward
    exact = span(0, L) + K * vocab * d + sum(span(t, p_max + 1) + K * vocab * d for t in range(P, P + T))
    return {"naive_macs": float(naive), "exact_macs": float(exact), "limit": naive / exact}


def build_batch(case: ScorerCase, vocab: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    L = case.prompt_len + case.reasoning_len + case.answer_len
    ids = torch.randint(1, vocab, (case.batch, L), generator=g)
    am = torch.ones_like(ids)
    rm = torch.zeros(case.batch, L, dtype=torch.bool)
    rm[:, case.prompt_len : case.prompt_len + case.reasoning_len] = True
    an = torch.zeros_like(rm)
    an[:, case.prompt_len + case.reasoning_len :] = True
    return tuple(t.to(case.device) for t in (ids, am, rm, an))


def scorer_fns(case: ScorerCase) -> dict:
    return {
        "naive_oar_p": lambda m, b: naive_perturbation_scores(
            m, *b, copies_per_forward=case.copies_per_forward
        ),
        "oar_p": lambda m, b: perturbation_scores(m, Layout(*b), max_batch_tokens=case.max_batch_tokens),
        "oar_g": lambda m, b: gradient_scores(
            m, Layout(*b), generator=torch.Generator(case.device).manual_seed(0)
        ),
        "perturbation_linear": lambda m, b: linear_perturbation_scores(
            m, Layout(*b)
        ),  # approximate OAR-P, linear in T
    }


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_scorers(case: ScorerCase, reps: int = 3, names: tuple[str, ...] | None = None) -> dict:
    """Median seconds per scorer (interleaved repetitions) and the max |OAR-P - naive| difference."""
    model = build_model(case.model, case.device)
    batch = build_batch(case, model.config.vocab_size)
    fns = scorer_fns(case)
    names = names or tuple(fns)
    outs = {n: fns[n](model, batch) for n in names}  # warm-up, and outputs for the equality check
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(reps):
        for n in names:
            _sync(case.device)
            t0 = time.perf_counter()
            fns[n](model, batch)
            _sync(case.device)
            times[n].append(time.perf_counter() - t0)
    result = {"case": asdict(case), "seconds": {n: statistics.median(v) for n, v in times.items()}}
    if "oar_p" in outs and "naive_oar_p" in outs:
        limit = exact_compute_limit(case)["limit"]
        speedup = result["seconds"]["naive_oar_p"] / result["seconds"]["oar_p"]
        result["exact_limit"] = {"limit": limit, "speedup": speedup, "of_limit": speedup / limit}
        result["max_abs_diff"] = (outs["oar_p"] - outs["naive_oar_p"]).abs().max().item()
    return result


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Release freed heap pages and reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5).

    Without this the peak left by building the model (init temporaries) hides the scorer's own peak.
    """
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_child(case: ScorerCase, name: str, queue) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = build_model(case.model, case.device)
    batch = build_batch(case, model.config.vocab_size)
    if case.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        scorer_fns(case)[name](model, batch)
        queue.put(torch.cuda.max_memory_allocated() - base)
        return
    with torch.no_grad():  # warm-up: the math libraries' one-off buffers are not the scorer's
        model(input_ids=batch[0][:, :8])
    if _reset_peak_rss() and _proc_status_kib("VmRSS") is not None:
        base = _proc_status_kib("VmRSS")
        scorer_fns(case)[name](model, batch)
        queue.put((_proc_status_kib("VmHWM") - base) * 1024)
        return
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # fallback: only growth past the old peak
    scorer_fns(case)[name](model, batch)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((peak - base) * (1 if sys.platform == "darwin" else 1024))  # ru_maxrss is KiB on Linux


def peak_memory(case: ScorerCase, name: str) -> int:
    """Extra peak memory (bytes) the scorer needs beyond the model and batch, in a fresh process."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_child, args=(case, name, queue))
    proc.start()
    value = queue.get()
    proc.join()
    return int(value)
