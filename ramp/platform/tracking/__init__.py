"""MLflow tracking: one run per round, nested runs per stage, registry aliases. Only the
coordinator (the driver) calls into this package; actors return their metrics to it.

- ``settings``: the config section ``tracking`` (imported by ramp.platform.config; no MLflow).
- ``uri``: tracking URI / artifact location / experiment from a config (SQLite in the store by
  default; an S3 store needs a server).
- ``runs.RunHandle``: batched, sanitised, resume-safe logging into one run.
- ``tracker.RoundTracker``: the round's run and its stage runs, resumable by id.
- ``registry.Registry``: model versions that point at store checkpoints; aliases candidate and
  production; ``resolve_alias`` for deploy/versions.
- ``plots``: advantage-histogram and value-curve PNGs.
- ``server`` / ``dashboard``: an ``mlflow server`` subprocess; ``ramp dashboard``.

Nothing here imports MLflow (~1-2 s) or matplotlib at module import: only when used.
"""
