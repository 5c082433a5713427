"""MLflow tracking: one run per round, nested runs per stage, registry aliases. Only the
coordinator (the driver) calls into this package; actors return their metrics to it."""
