"""The trainer-independent OAR batch step: find answer spans in rollouts (``spans``), then score, gate and
reshape the advantages (``reshape.oar_token_advantages``). Any trainer calls it after group normalisation.
Imports ``oarl.core`` only."""
