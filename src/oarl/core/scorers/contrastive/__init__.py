"""Contrastive credit: cDPO's critical tokens from a positive and a negative model (``cdpo``)."""
