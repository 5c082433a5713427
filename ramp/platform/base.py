"""The base class of every config section, in a module that imports nothing else from ramp.

Why its own module: config sections live next to the code that reads them (for example
``ramp.platform.rl.settings``) and ``ramp.platform.config`` composes them. If the base class lived
in config.py, config.py and a section module would import each other and whichever was imported
first would fail.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
