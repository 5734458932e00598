"""Attention structure: the anchor tokens that later tokens attend to (``anchor``, FAI of arXiv 2510.13554)."""
