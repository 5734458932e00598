"""Real pretrained models by short name: where they come from, how they are fetched, how a name resolves.

This is I/O (package files, a cache folder) and needs the lab extra (gguf reads the file ``fetch`` converts):
part of the lab, never imported by the library.
"""

from oarl.lab.models.registry import MODELS, ModelSpec
from oarl.lab.models.resolve import ModelNotFetched, UnknownModel, model_home, resolve_model

__all__ = ["MODELS", "ModelSpec", "ModelNotFetched", "UnknownModel", "model_home", "resolve_model"]
