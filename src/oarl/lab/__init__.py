"""The lab: what oarl measures OAR with, beside the library (``oarl.core``, ``oarl.batch``,
``oarl.integrations``), which never imports it. It ships in the same package but needs the ``lab`` extra
(``pip install "oarl[lab]"``); importing any of it without that extra fails here, at once, with that line.

- ``testbed/``: synthetic tasks with known causal tokens, the tiny model, warm starts, RL runs, studies;
- ``math/``: GSM8K / MATH500 data, prompt templates, pass@k; its math-verify rewards (``math/rewards.py``)
  need the ``math`` extra as well;
- ``models/``: real models by short name (SmolLM2-135M: fetched, sha256-checked, converted once);
- ``viz/``: attribution heatmaps, curves; ``bench/``: ``oarl bench``.
"""

from oarl.utils.extras import require

#: The lab's third-party modules (import name -> PyPI name): pyproject.toml's ``lab`` extra (tested).
LAB_MODULES = {
    "datasets": "datasets",
    "gguf": "gguf",
    "matplotlib": "matplotlib",
    "peft": "peft",
    "rich": "rich",
    "scipy": "scipy",
    "tokenizers": "tokenizers",
    "tqdm": "tqdm",
    "yaml": "pyyaml",
}

require("lab", LAB_MODULES, "oarl.lab")
