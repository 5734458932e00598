"""Pictures: token-attribution heatmaps (HTML + PNG), training curves, the shared palette (matplotlib: the lab
extra)."""
