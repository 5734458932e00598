"""The lab: what oarl measures OAR with, beside the library (``oarl.core``, ``oarl.batch``,
``oarl.integrations``). Installed by the ``lab`` extra (``pip install "oarl[lab]"``); the library never imports it.

- ``math/``: GSM8K / MATH500 data, prompt templates, math-verify rewards, pass@k (the ``math`` extra);
- ``testbed/``: synthetic tasks with known causal tokens, tiny models, warm starts, RL runs, studies;
- ``models/``: real models by short name (SmolLM2-135M: fetched, sha256-checked, converted once);
- ``viz/``: attribution heatmaps, curves; ``bench/``: ``oarl bench``.
"""
