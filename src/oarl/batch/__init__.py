"""The trainer-independent OAR step. A trainer builds a :class:`~oarl.batch.rollout.Rollout` (ids, masks,
group-normalised advantages, rewards, groups, loss mask, oracle labels) and calls
:class:`~oarl.batch.step.OARStep` with it: answer spans (``spans``), then score, gate and reshape
(``reshape.oar_token_advantages``, through ``credit.score_and_gate`` on a ``rollout_layout``), with the settings of
:class:`~oarl.batch.settings.OARSettings`. Imports ``oarl.core`` only."""
