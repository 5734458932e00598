"""Trainer integrations: each calls ``oarl.batch.reshape.oar_token_advantages`` from one hook. TRL today."""
