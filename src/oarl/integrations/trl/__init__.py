"""TRL integration: ``OARConfig`` / ``OARGRPOTrainer`` (swap two names) and resume helpers."""

from oarl.integrations.trl.trainer import OARConfig, OARGRPOTrainer

__all__ = ["OARConfig", "OARGRPOTrainer"]
