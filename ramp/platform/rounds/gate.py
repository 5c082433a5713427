"""The promotion gate: does the candidate policy replace production?

The candidate and the production policy ran the same seeded simulated episodes (no human), so
their outcomes pair up by (task, seed). The candidate is promoted when the paired evidence says it
is better: the exact one-sided McNemar test on the discordant pairs (candidate succeeded where
production failed, b, against the reverse, c) gives p < ``level``, and the paired difference
(b - c) / n exceeds ``margin``. With ``collapse_veto``, a candidate whose training advantages
collapsed is never promoted: a policy trained on indicators that carry no signal can look fine in
a few episodes and still be worse. With no production policy yet the candidate is promoted
unless vetoed. The decision records the evidence: the difference with Newcombe's paired interval
at two-sided confidence 1 - 2 * level (its lower end is the one-sided bound matching the test),
both rates with Wilson intervals, the p-value and the smallest difference n pairs can show
(ramp/platform/stats.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ramp.platform.stats import TEST, paired_comparison, wilson_interval


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    candidate_success: float | None
    production_success: float | None
    margin: float
    test: str = TEST
    level: float | None = None  # one-sided significance level of the test
    n: int | None = None  # paired episodes
    discordant: list[int] | None = None  # [b, c]: candidate-only, production-only successes
    difference: float | None = None  # (b - c) / n
    interval: list[float] | None = None  # Newcombe, on the difference
    interval_level: float | None = None  # 1 - 2 * level (two-sided)
    p_value: float | None = None
    candidate_interval: list[float] | None = None  # Wilson
    production_interval: list[float] | None = None  # Wilson
    min_detectable_difference: float | None = None
    detectable_difference_80: float | None = None
    per_task: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _field(o: Any, name: str) -> Any:
    return o[name] if isinstance(o, Mapping) else getattr(o, name)


def _keyed(outcomes: Sequence[Any], label: str) -> dict[tuple[str, int | None], bool]:
    out: dict[tuple[str, int | None], bool] = {}
    for o in outcomes:
        seed = _field(o, "seed")
        key = (str(_field(o, "task")), None if seed is None else int(seed))
        if key in out:
            raise ValueError(f"{label} has more than one outcome for task {key[0]!r} seed {key[1]}")
        out[key] = bool(_field(o, "success"))
    return out


def align_outcomes(
    candidate: Sequence[Any], production: Sequence[Any]
) -> tuple[list[tuple[str, int | None]], list[bool], list[bool]]:
    """Pair two policies' evaluation outcomes (dicts or objects with task, seed, success) by
    (task, seed): (keys sorted, candidate successes, production successes). Both must have run
    exactly the same (task, seed) set, once each; otherwise ValueError naming what differs."""
    cand, prod = _keyed(candidate, "candidate"), _keyed(production, "production")
    if cand.keys() != prod.keys():
        only_c, only_p = sorted(cand.keys() - prod.keys()), sorted(prod.keys() - cand.keys())

        def show(keys: list) -> str:
            more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
            return ", ".join(f"{t} s{s}" for t, s in keys[:5]) + more or "none"

        raise ValueError(
            "candidate and production were not evaluated on the same (task, seed) episodes, so "
            f"they cannot be paired: only the candidate ran {show(only_c)}; only production ran "
            f"{show(only_p)}"
        )
    keys = sorted(cand, key=lambda k: (k[0], -1 if k[1] is None else k[1]))
    return keys, [cand[k] for k in keys], [prod[k] for k in keys]


def _per_task(keys: list, cand: list[bool], prod: list[bool]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (task, _), x, y in zip(keys, cand, prod, strict=True):
        t = out.setdefault(task, {"n": 0, "candidate": 0, "production": 0, "b": 0, "c": 0})
        t["n"] += 1
        t["candidate"] += x
        t["production"] += y
        t["b"] += x and not y
        t["c"] += y and not x
    return out


def _p(p: float) -> str:
    return f"{p:.3g}"


def decide(
    candidate: Sequence[Any] | None,
    production: Sequence[Any] | None,
    *,
    level: float = 0.1,
    margin: float = 0.0,
    collapsed: bool,
    collapse_veto: bool,
    collapse_reason: str = "",
) -> GateDecision:
    """Promotion rule (see module docstring). ``candidate`` / ``production``: each policy's
    evaluation outcomes (task, seed, success), None when that policy has none: production None
    means nothing is in production yet (the candidate is the first deployable policy and is
    promoted unless vetoed); candidate None with a production policy means the candidate was not
    evaluated, and production stays."""
    if not 0.0 < level < 0.5:
        raise ValueError(f"level (one-sided) must be in (0, 0.5), got {level!r}")
    conf = 1.0 - 2.0 * level

    def rate(outs: Sequence[Any] | None) -> float | None:
        return sum(bool(_field(o, "success")) for o in outs) / len(outs) if outs else None

    base = dict(
        candidate_success=rate(candidate),
        production_success=rate(production),
        margin=float(margin),
        level=float(level),
        interval_level=conf,
    )
    if candidate and production:
        keys, cand, prod = align_outcomes(candidate, production)
        cmp = paired_comparison(cand, prod, level=conf, alpha=level)
        base.update(
            n=cmp.n,
            discordant=[cmp.b, cmp.c],
            difference=cmp.difference,
            interval=list(cmp.interval),
            p_value=cmp.p_value,
            candidate_interval=list(cmp.candidate_interval),
            production_interval=list(cmp.production_interval),
            min_detectable_difference=cmp.min_detectable_difference,
            detectable_difference_80=cmp.detectable_difference_80,
            per_task=_per_task(keys, cand, prod),
        )
    elif candidate:
        wins = sum(bool(_field(o, "success")) for o in candidate)
        base["candidate_interval"] = list(wilson_interval(wins, len(candidate), conf))

    if production is None:
        # Nothing to fall back on: keeping "no policy" would stop the loop (round 1 collects with
        # production), so the first policy goes out and the alarm stays on record.
        note = f" (the collapse alarm is raised: {collapse_reason})" if collapsed else ""
        return GateDecision(
            True, f"first policy: nothing in production to compare against{note}", **base
        )
    if collapsed and collapse_veto:
        return GateDecision(False, f"advantage collapse veto: {collapse_reason}", **base)
    if not candidate:
        return GateDecision(False, "the candidate was not evaluated", **base)
    if not production:
        return GateDecision(False, "production was not evaluated: nothing to compare", **base)

    lo, hi = base["interval"]
    b, c = base["discordant"]
    p, diff, n = base["p_value"], base["difference"], base["n"]
    evidence = (
        f"candidate {base['candidate_success']:.2f} vs production "
        f"{base['production_success']:.2f} on {n} paired episodes ({b} won, {c} lost): "
        f"{diff:+.2f} [{lo:+.2f}, {hi:+.2f}] ({100 * conf:g}% interval), one-sided McNemar "
        f"p={_p(p)}"
    )
    if p >= level:
        mdd = base["min_detectable_difference"]
        floor = (
            f"smallest detectable difference at n={n}: {mdd:.2f}"
            if mdd is not None
            else f"no difference is detectable at n={n} and level {level:g}: too few pairs"
        )
        return GateDecision(
            False, f"{evidence} >= {level:g}: not better with this evidence ({floor})", **base
        )
    if diff <= margin:
        return GateDecision(
            False, f"{evidence} < {level:g} but {diff:+.2f} <= margin {margin:g}: keep", **base
        )
    return GateDecision(True, f"{evidence} < {level:g}: promote", **base)


def veto_reasons(verdict: dict[str, Any], veto_on: Sequence[str]) -> list[str]:
    """The alarm reasons of a label stage's verdict (its JSON form) that may veto a promotion.

    A verdict recorded before reasons had kinds has no ``advantage_reasons``: all of its
    reasons count, as they did then."""
    if not verdict.get("collapsed"):
        return []
    if "advantage_reasons" not in verdict:
        return list(verdict.get("reasons") or [verdict.get("reason", "collapsed")])
    out: list[str] = []
    if "advantages" in veto_on:
        out += list(verdict.get("advantage_reasons") or [])
    if "values" in veto_on:
        out += list(verdict.get("value_reasons") or [])
    return out
