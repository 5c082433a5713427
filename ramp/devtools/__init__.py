"""Developer tools: local services for tests and trials (never used by the core)."""
