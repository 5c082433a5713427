"""What a store holds, per round, source, task and embodiment (from the index; no data reads)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ramp.platform.episodes.index import IndexEntry

GROUPS = ("round", "source", "task", "embodiment")


def _summary(entries: list[IndexEntry]) -> dict[str, Any]:
    n = len(entries)
    steps = sum(e.num_steps for e in entries)
    return {
        "episodes": n,
        "steps": steps,
        "success_rate": (sum(e.success for e in entries) / n) if n else 0.0,
        "intervention_share": (sum(e.intervention_steps for e in entries) / steps)
        if steps
        else 0.0,
        "bytes": sum(e.bytes for e in entries),
    }


def store_stats(entries: Iterable[IndexEntry]) -> dict[str, Any]:
    """{"total": summary, "by": {group: {value: summary}}}; JSON-ready."""
    entries = list(entries)
    by: dict[str, dict[str, Any]] = {}
    for group in GROUPS:
        buckets: dict[Any, list[IndexEntry]] = defaultdict(list)
        for e in entries:
            buckets[getattr(e, group)].append(e)
        by[group] = {str(k): _summary(v) for k, v in sorted(buckets.items())}
    return {"total": _summary(entries), "by": by}


def format_stats(stats: dict[str, Any], root: str) -> str:
    """Aligned text tables, one per grouping."""
    total = stats["total"]
    lines = [
        f"store {root}: {total['episodes']} episodes, {total['steps']} steps, "
        f"success {total['success_rate']:.1%}, intervention {total['intervention_share']:.1%}, "
        f"{total['bytes'] / 2**20:.1f} MiB"
    ]
    if not total["episodes"]:
        return "\n".join(lines)
    for group, rows in stats["by"].items():
        width = max(len(group), *(len(k) for k in rows))
        lines.append("")
        lines.append(
            f"{group.ljust(width)}  {'episodes':>8}  {'steps':>9}  {'success':>7}  {'interv.':>7}"
        )
        for key, s in rows.items():
            lines.append(
                f"{key.ljust(width)}  {s['episodes']:>8}  {s['steps']:>9}  "
                f"{s['success_rate']:>7.1%}  {s['intervention_share']:>7.1%}"
            )
    return "\n".join(lines)
