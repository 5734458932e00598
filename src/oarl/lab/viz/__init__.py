"""Pictures: token-attribution heatmaps (HTML + PNG), training curves, the shared palette."""
