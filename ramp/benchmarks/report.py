"""The one result format every benchmark produces (ARCHITECTURE.md, "Benchmarks").

A benchmark measures ramp and a baseline in the same run and reports their ratio, so numbers from
a noisy shared machine still compare. Higher ratios are better: latencies are inverted.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Target = dict[str, float]  # {"min": x} or {"max": x}


def machine_description() -> str:
    """A short, stable description of where the numbers came from."""
    mem_gib = 0.0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gib = int(line.split()[1]) / 2**20
                    break
    except OSError:
        pass
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    system = f"{platform.system()} {platform.machine()}"
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, {system}"


@dataclass
class BenchResult:
    """What a benchmark measured: raw metrics, ratios against its in-run baseline, and goals."""

    name: str
    metrics: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)  # the printed table
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "machine": machine_description(),
            "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "ratios": {k: float(v) for k, v in self.ratios.items()},
            "targets": self.targets,
        }

    def target_failures(self) -> list[str]:
        """Keys whose goal is not met (printed, never asserted: speed is not a test)."""
        out = []
        values = {**self.metrics, **self.ratios}
        for key, goal in self.targets.items():
            v = values.get(key)
            if v is None:
                continue
            if "min" in goal and v < goal["min"]:
                out.append(f"{key} = {v:.3g} < min {goal['min']}")
            if "max" in goal and v > goal["max"]:
                out.append(f"{key} = {v:.3g} > max {goal['max']}")
        return out

    def table(self) -> str:
        """The rows as an aligned text table, then ratios with their targets."""
        lines = [f"== {self.name} ({machine_description()})"]
        if self.rows:
            cols = list(self.rows[0])
            cells = [[_fmt(r.get(c)) for c in cols] for r in self.rows]
            widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
            lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
            lines.append("  ".join("-" * w for w in widths))
            lines += [
                "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells
            ]
        if self.ratios:
            lines.append("")
            for k, v in self.ratios.items():
                goal = self.targets.get(k, {})
                tgt = " ".join(f"{op} {x}" for op, x in goal.items())
                ok = "" if not goal else ("  ok" if not _misses(v, goal) else "  MISSED")
                lines.append(f"ratio {k}: {v:.3f}" + (f"  (target {tgt})" if tgt else "") + ok)
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)


def _misses(v: float, goal: Target) -> bool:
    return ("min" in goal and v < goal["min"]) or ("max" in goal and v > goal["max"])


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.3g}"
    return "" if v is None else str(v)


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """Fastest wall time of `repeats` calls: the least noisy estimate on a shared machine."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def paired_medians(
    ours: Callable[[], Any],
    baseline: Callable[[], Any],
    repeats: int,
    after: Callable[[Any], None] | None = None,
) -> tuple[float, float]:
    """Median wall times of `ours` and `baseline`, run interleaved with alternating order.

    On a shared 2-core machine disk write-back and neighbours come in bursts; interleaving
    makes a burst hit both sides, and the median ignores the odd outlier either way. `after`
    receives each call's return value outside the timing (e.g. to delete what it wrote).
    """
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    for i in range(max(1, repeats)):
        order = [("ours", ours), ("baseline", baseline)]
        if i % 2:
            order.reverse()
        for key, fn in order:
            t0 = time.perf_counter()
            out = fn()
            times[key].append(time.perf_counter() - t0)
            if after is not None:
                after(out)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return med["ours"], med["baseline"]


def write_json(result: BenchResult, path: str | Path) -> Path:
    """Write to PATH, or to PATH/<name>.json when PATH is a directory."""
    p = Path(path)
    if p.is_dir() or str(path).endswith("/"):
        p.mkdir(parents=True, exist_ok=True)
        p = p / f"{result.name}.json"
    else:
        p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    tmp.replace(p)
    return p
