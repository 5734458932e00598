"""Trainer integrations: each builds a :class:`oarl.batch.rollout.Rollout` from its batch and calls
:class:`oarl.batch.step.OARStep` with it, from one hook. TRL today."""
