"""Small shared utilities with no oarl imports: atomic file writes, checkpoint loading."""
