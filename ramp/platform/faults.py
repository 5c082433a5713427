"""Fault injection for the reliability tests: named points in the loop that can kill or raise.

Off unless ``RAMP_FAULTS`` is set (JSON). Each entry names a point and when it fires:

    RAMP_FAULTS='{"train.step": {"at": 30, "action": "kill", "marker": "/tmp/x/fired"}}'

``at`` is the point's counter value (a step, an episode's step, a stage number) at which it
fires; ``action`` is ``kill`` (SIGKILL to this process: a node or worker dying) or ``raise``;
``marker`` is a file created just before firing, and a point whose marker exists never fires
again, so a retried worker or a resumed round runs through. Actors inherit the variable through
``runtime_env()``. Production code pays one dict lookup per point when the variable is unset.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

ENV = "RAMP_FAULTS"


class InjectedFault(RuntimeError):
    """Raised by a point whose action is ``raise``."""


def _spec() -> dict[str, Any]:
    raw = os.environ.get(ENV)
    if not raw:
        return {}
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{ENV} is not valid JSON: {e}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"{ENV} must be a JSON object of point -> {{at, action, marker}}")
    return spec


def point(name: str, counter: int) -> None:
    """Fire the fault configured for ``name`` if ``counter`` reached its ``at``."""
    entry = _spec().get(name)
    if not entry or counter < int(entry.get("at", 0)):
        return
    marker = entry.get("marker")
    if marker:
        path = Path(marker)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name} at {counter} in pid {os.getpid()}\n")
    if entry.get("action", "kill") == "raise":
        raise InjectedFault(f"injected fault at {name} ({counter})")
    os.kill(os.getpid(), signal.SIGKILL)


def runtime_env() -> dict[str, Any]:
    """``runtime_env`` entries that carry the fault spec into Ray actors and workers."""
    raw = os.environ.get(ENV)
    return {"env_vars": {ENV: raw}} if raw else {}
