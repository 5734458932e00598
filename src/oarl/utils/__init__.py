"""Small shared utilities with no oarl imports: atomic file writes, checkpoint loading, torch threads,
autocast, and the check an optional part of oarl makes for its extra (``extras``). Part of the library."""
