"""The continual-training round as data: settings, manifest, lock, promotion gate (no Ray)."""
