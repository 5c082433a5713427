"""The promotion gate: does the candidate policy replace production?

The candidate and the production policy ran the same seeded simulated episodes (no human). The
candidate is promoted when its success rate is at least production's plus ``margin`` and, with
``collapse_veto``, the advantages it was trained on did not collapse: a policy trained on
indicators that carry no signal can look fine in a few episodes and still be worse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    candidate_success: float | None
    production_success: float | None
    margin: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    candidate_success: float | None,
    production_success: float | None,
    *,
    margin: float,
    collapsed: bool,
    collapse_veto: bool,
    collapse_reason: str = "",
) -> GateDecision:
    """Promotion rule (see module docstring). No production policy yet: the candidate is the first
    deployable policy and is promoted unless vetoed."""
    args = (candidate_success, production_success, margin)
    if collapsed and collapse_veto:
        return GateDecision(False, f"advantage collapse veto: {collapse_reason}", *args)
    if production_success is None:
        return GateDecision(True, "first policy: nothing in production to compare against", *args)
    if candidate_success is None:
        return GateDecision(False, "the candidate was not evaluated", *args)
    need = production_success + margin
    if candidate_success >= need:
        return GateDecision(
            True,
            f"candidate {candidate_success:.3f} >= production {production_success:.3f} "
            f"+ margin {margin:g}",
            *args,
        )
    return GateDecision(
        False,
        f"candidate {candidate_success:.3f} < production {production_success:.3f} "
        f"+ margin {margin:g}",
        *args,
    )
