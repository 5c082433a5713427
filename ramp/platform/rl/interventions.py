"""Takeover and hand-back boundaries in human-in-the-loop rollouts, and their artifacts removed.

When an operator takes over (or hands control back), the first actions of the new controller and
the last of the old one are often transitional: the teleoperation device is not yet aligned with
the robot, the policy's action-chunk queue still holds actions planned before the switch. PAPER.md
(stage 3) removes such steps automatically before training.

A boundary is the first step of the new controller inside one episode: a takeover where the
``intervention`` flag turns on, a hand-back where it turns off. An episode that starts under human
control has no boundary at its first step. Each boundary has a window, ``*_before`` steps before
it and ``*_after`` steps from it on, clipped to its episode; only steps inside a window can be
dropped (rule ``window`` drops all of them, rule ``action_jump`` only the run from the boundary
out to the farthest large action jump).

Cleaning never edits an episode: it returns a keep mask, a reason per step and a report, and
``clean_table`` returns a new, filtered table. Compute rewards, returns and advantages on the raw
episodes (their length is part of the reward) and use ``keep`` to choose training samples; a
cleaned table keeps the original ``step`` values, with gaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ramp.platform.rl.layout import check_offsets, column_bool, column_matrix, episodes_from_table
from ramp.platform.rl.settings import InterventionConfig

TAKEOVER = np.uint8(1)  # reason bit: inside a takeover's window
HANDBACK = np.uint8(2)  # reason bit: inside a hand-back's window


@dataclass(frozen=True)
class InterventionReport:
    """What cleaning found and removed; ``metrics()`` for the tracker, ``summary()`` for people."""

    rule: str
    steps: int
    removed: int
    takeovers: int
    handbacks: int
    removed_takeover: int  # steps inside a takeover window that were dropped
    removed_handback: int  # steps inside a hand-back window that were dropped
    episodes_with_interventions: int

    def metrics(self) -> dict[str, float]:
        return {
            "interventions/takeovers": float(self.takeovers),
            "interventions/handbacks": float(self.handbacks),
            "interventions/removed_steps": float(self.removed),
            "interventions/removed_takeover": float(self.removed_takeover),
            "interventions/removed_handback": float(self.removed_handback),
            "interventions/removed_frac": self.removed / self.steps if self.steps else 0.0,
            "interventions/episodes": float(self.episodes_with_interventions),
        }

    def summary(self) -> str:
        return (
            f"{self.takeovers} takeovers and {self.handbacks} hand-backs in "
            f"{self.episodes_with_interventions} episodes; rule {self.rule!r} removed "
            f"{self.removed} of {self.steps} steps ({self.removed_takeover} around takeovers, "
            f"{self.removed_handback} around hand-backs)"
        )


@dataclass(frozen=True)
class CleanResult:
    """The cleaned view of a set of episodes: which steps stay, and why the others went."""

    keep: np.ndarray  # bool [N]
    reason: np.ndarray  # uint8 [N]: 0 kept, else TAKEOVER | HANDBACK bits of the windows
    boundary_index: np.ndarray  # int64 [B]: flat index of each boundary step
    boundary_kind: np.ndarray  # uint8 [B]: TAKEOVER or HANDBACK
    report: InterventionReport


def find_boundaries(intervention: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of takeover / hand-back steps (first step of the new controller) and kinds."""
    h = np.asarray(intervention, dtype=bool)
    offsets = check_offsets(offsets, h.size)
    if h.size < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.uint8)
    change = h[1:] != h[:-1]  # change[i - 1]: step i has another controller than step i - 1
    change[offsets[1:-1] - 1] = False  # a new episode is not a boundary
    index = np.flatnonzero(change).astype(np.int64) + 1
    kind = np.where(h[index], TAKEOVER, HANDBACK).astype(np.uint8)
    return index, kind


def action_jumps(actions: np.ndarray, offsets: np.ndarray, norm: str = "linf") -> np.ndarray:
    """Distance of each step's action to the previous step's (0 at an episode's first step)."""
    a = np.asarray(actions, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    offsets = check_offsets(offsets, a.shape[0])
    jump = np.zeros(a.shape[0], dtype=np.float32)
    if a.shape[0] > 1:
        d = np.abs(a[1:] - a[:-1]) if norm == "linf" else (a[1:] - a[:-1]) ** 2
        jump[1:] = d.max(axis=1) if norm == "linf" else np.sqrt(d.sum(axis=1))
    jump[offsets[:-1]] = 0.0
    return jump


def _mark(n: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Union of the index ranges [lo, hi) as a bool mask, via a difference array (no loop)."""
    ok = hi > lo
    d = np.zeros(n + 1, dtype=np.int32)
    np.add.at(d, lo[ok], 1)
    np.add.at(d, hi[ok], -1)
    return np.cumsum(d[:n]) > 0


def _jump_spans(
    b: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    before: int,
    after: int,
    jump: np.ndarray,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per boundary: the span before it from the farthest jump to b, and from b to the farthest
    jump after it, both inside the window; empty spans where the window holds no jump."""
    # after side: positions b .. b + after - 1 inside the episode
    if after > 0:
        pos = b[:, None] + np.arange(after)[None, :]
        valid = pos < end[:, None]
        big = valid & (jump[np.minimum(pos, jump.size - 1)] > threshold)
        last = np.where(big.any(axis=1), after - 1 - np.argmax(big[:, ::-1], axis=1), -1)
        a_lo, a_hi = b, b + last + 1
    else:
        a_lo = a_hi = b
    # before side: positions b - before .. b - 1 inside the episode (column 0 is the farthest)
    if before > 0:
        pos = b[:, None] - before + np.arange(before)[None, :]
        valid = pos >= start[:, None]
        big = valid & (jump[np.maximum(pos, 0)] > threshold)
        first = np.where(big.any(axis=1), np.argmax(big, axis=1), before)
        b_lo, b_hi = b - before + first, b
    else:
        b_lo = b_hi = b
    return b_lo, b_hi, a_lo, a_hi


def clean_steps(
    intervention: np.ndarray,
    offsets: np.ndarray,
    cfg: InterventionConfig,
    actions: np.ndarray | None = None,
) -> CleanResult:
    """The keep mask of the steps of many episodes (flat arrays, see layout.py).

    ``actions`` ([N, D]) is needed by rule ``action_jump`` only.
    """
    h = np.asarray(intervention, dtype=bool)
    n = h.size
    offsets = check_offsets(offsets, n)
    index, kind = find_boundaries(h, offsets)
    reason = np.zeros(n, dtype=np.uint8)
    if cfg.enabled and index.size:
        episode = np.searchsorted(offsets, index, side="right") - 1
        start, end = offsets[episode], offsets[episode + 1]
        if cfg.rule == "action_jump":
            if actions is None:
                raise ValueError("rl.interventions.rule 'action_jump' needs the action column")
            jump = action_jumps(actions, offsets, cfg.action_jump_norm)
        for bit, before, after in (
            (TAKEOVER, cfg.takeover_before, cfg.takeover_after),
            (HANDBACK, cfg.handback_before, cfg.handback_after),
        ):
            sel = kind == bit
            b, s, e = index[sel], start[sel], end[sel]
            if cfg.rule == "window":
                mask = _mark(n, np.maximum(b - before, s), np.minimum(b + after, e))
            else:
                b_lo, b_hi, a_lo, a_hi = _jump_spans(b, s, e, before, after, jump, cfg.action_jump)
                mask = _mark(n, np.concatenate([b_lo, a_lo]), np.concatenate([b_hi, a_hi]))
            reason[mask] |= bit
    keep = reason == 0
    episodes_with = 0
    if h.any():
        episodes_with = int(np.count_nonzero(np.add.reduceat(h.astype(np.int64), offsets[:-1])))
    report = InterventionReport(
        rule=cfg.rule if cfg.enabled else "disabled",
        steps=n,
        removed=int(n - np.count_nonzero(keep)),
        takeovers=int(np.count_nonzero(kind == TAKEOVER)),
        handbacks=int(np.count_nonzero(kind == HANDBACK)),
        removed_takeover=int(np.count_nonzero(reason & TAKEOVER)),
        removed_handback=int(np.count_nonzero(reason & HANDBACK)),
        episodes_with_interventions=episodes_with,
    )
    return CleanResult(keep, reason, index, kind, report)


def clean_table(table: pa.Table, cfg: InterventionConfig) -> tuple[pa.Table, CleanResult]:
    """A new table without the transitional steps; ``table`` itself is left as it was."""
    episodes = episodes_from_table(table)
    actions = column_matrix(table, "action") if cfg.rule == "action_jump" else None
    result = clean_steps(column_bool(table, "intervention"), episodes.offsets, cfg, actions)
    return table.filter(pa.array(result.keep)), result
