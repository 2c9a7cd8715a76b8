"""Topics: per-emotion audio codebooks and LDA topic subclasses (the playlists)."""
