"""Fixtures of the actor tests. The demonstration store (`demo_store_template`, `demo_store`)
lives in tests/conftest.py; `tiny_config` in tests/round_helpers.py (re-exported here)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

from round_helpers import TASKS, tiny_config  # noqa: F401 - re-exported for the tests here
