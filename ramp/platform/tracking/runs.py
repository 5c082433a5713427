"""One MLflow run, with the logging calls ramp needs: batched, sanitised, and safe to repeat.

Why a wrapper over ``MlflowClient`` rather than ``mlflow.start_run``: the fluent API keeps the
active run in process-global state, which a coordinator that resumes a round (and its stage runs)
by id cannot rely on. Every call here names its run explicitly.

Why "safe to repeat": a coordinator killed mid-stage re-runs the stage in a resumed run. MLflow
refuses to change a logged param (so changed values are reported, not raised), and a metric
point logged twice shows twice in its history (so a resumed run skips points it already holds with
the same step and value; a re-run stage's different values are logged, the latest wins). A fresh
run pays nothing for this; a resumed one reads each metric's history once.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

# MLflow 3.17 accepts 6000-character params, but servers before 2.x cap them at 500 and a ramp
# client may talk to an older server: 500 is safe everywhere (the full config is also an artifact).
PARAM_VALUE_LIMIT = 500
TAG_VALUE_LIMIT = 5000  # likewise (8000 on 3.17)
KEY_LIMIT = 250
BATCH_PARAMS = 100  # MAX_PARAMS_TAGS_PER_BATCH
BATCH_METRICS = 1000  # MAX_METRICS_PER_BATCH
SECRET_KEY_RE = re.compile(
    r"(secret|password|passwd|credential|api_key|access_key)|^(tokens?|\w+_token)$", re.I
)
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")
STATUSES = ("FINISHED", "FAILED", "KILLED", "RUNNING")


def truncate(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters with a marker saying how much was cut."""
    if len(value) <= limit:
        return value
    for digits in range(1, 12):  # the marker's own length depends on the count it shows
        cut = len(value) - (limit - len(f"...[+{'9' * digits} chars]"))
        if len(str(cut)) <= digits:
            break
    marker = f"...[+{cut} chars]"
    return value[: limit - len(marker)] + marker


def clean_key(key: str) -> str:
    """A metric/param/tag key MLflow accepts: its characters, no path tricks, <= 250 chars.

    Task and embodiment names may hold characters MLflow rejects; they become ``_``.
    """
    key = _BAD_KEY_CHARS.sub("_", str(key)).strip()
    key = posixpath.normpath(key).lstrip("/") if key else "_"
    if key in (".", "") or key.startswith(".."):
        key = "_" + key
    if len(key) > KEY_LIMIT:
        import hashlib

        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        key = f"{key[: KEY_LIMIT - 9]}~{digest}"
    return key


def _param_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None or isinstance(value, list | tuple | dict):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested mapping as ``{"a.b.c": "value"}`` param strings; lists stay JSON in one param.

    Keys that look secret (``tokens``, ``*_token``, password, secret, access_key, ...) are
    redacted, whatever the config model already masked; ``max_text_tokens`` and the like stay.
    """
    out: dict[str, str] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if SECRET_KEY_RE.search(str(k)) and v not in (None, "", [], {}):
            out[key] = "***"
        elif isinstance(v, Mapping) and v:
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = _param_text(v)
    return out


def _number(value: Any) -> float | None:
    """A metric value as float, or None for what is not a number (skipped, not an error)."""
    if isinstance(value, bool):
        return float(value)
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out


def _chunks(items: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class RunHandle:
    """An existing MLflow run: params, metrics, histories, artifacts and tags, by run id."""

    def __init__(self, client: MlflowClient, run_id: str, *, resumed: bool = False) -> None:
        self.client = client
        self.run_id = run_id
        self.resumed = resumed  # True: this process took over a run another one started
        self._seen: dict[str, set[tuple[int, float]]] = {}  # resumed runs: (step, value) per key

    # -- params and tags --------------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> list[str]:
        """Log params (long values truncated); returns the keys NOT logged because the run
        already holds a different value (MLflow params are immutable; the tag
        ``ramp.params.changed`` lists them). Re-logging an equal value is a no-op."""
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        todo: dict[str, str] = {}
        changed: list[str] = []
        for k, v in params.items():
            key = clean_key(k)
            text = truncate(_param_text(v), PARAM_VALUE_LIMIT)
            if key in existing:
                if existing[key] != text:
                    changed.append(key)
                continue
            todo[key] = text
        items = [Param(k, v) for k, v in todo.items()]
        for chunk in _chunks(items, BATCH_PARAMS):
            self.client.log_batch(self.run_id, params=list(chunk))
        if changed:
            log.warning(
                "run %s: %d params differ from the values logged before (kept the old ones): %s",
                self.run_id,
                len(changed),
                ", ".join(changed[:10]),
            )
            self.set_tags({"ramp.params.changed": ", ".join(sorted(changed))})
        return changed

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (None values skipped; values truncated); one batched call."""
        from mlflow.entities import RunTag

        items = [
            RunTag(clean_key(k), truncate(str(v), TAG_VALUE_LIMIT))
            for k, v in tags.items()
            if v is not None
        ]
        for chunk in _chunks(items, BATCH_PARAMS):
            self.client.log_batch(self.run_id, tags=list(chunk))

    def tags(self) -> dict[str, str]:
        return dict(self.client.get_run(self.run_id).data.tags)

    # -- metrics ----------------------------------------------------------------------------

    def _logged(self, key: str) -> set[tuple[int, float]]:
        if key not in self._seen:
            history = self.client.get_metric_history(self.run_id, key)
            self._seen[key] = {(m.step, m.value) for m in history}
        return self._seen[key]

    def _send(self, points: list[tuple[str, float, int]]) -> int:
        from mlflow.entities import Metric

        if self.resumed:  # a replayed point (same key, step and value) is not logged twice
            points = [p for p in points if (p[2], p[1]) not in self._logged(p[0])]
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, s) for k, v, s in points]
        for chunk in _chunks(metrics, BATCH_METRICS):
            self.client.log_batch(self.run_id, metrics=list(chunk))
        if self.resumed:
            for k, v, s in points:
                self._seen[k].add((s, v))
        return len(metrics)

    def log_metrics(self, metrics: Mapping[str, Any], step: int = 0, prefix: str = "") -> int:
        """Log numbers (bools as 0/1; non-numbers skipped) at ``step`` in batched calls;
        returns how many were sent."""
        points = []
        for k, v in metrics.items():
            value = _number(v)
            if value is not None:
                points.append((clean_key(f"{prefix}{k}"), value, int(step)))
        return self._send(points)

    def log_history(
        self, history: Sequence[Mapping[str, Any]], prefix: str = "", step_key: str = "step"
    ) -> int:
        """A list of ``{"step": s, name: value, ...}`` as metric histories (one point per name
        and step, batched); entries without a step use their position."""
        points = []
        for i, row in enumerate(history):
            step = int(row.get(step_key, i))
            for k, v in row.items():
                if k == step_key:
                    continue
                value = _number(v)
                if value is not None:
                    points.append((clean_key(f"{prefix}{k}"), value, step))
        return self._send(points)

    def metrics(self) -> dict[str, float]:
        """The latest value of every metric of the run."""
        return dict(self.client.get_run(self.run_id).data.metrics)

    # -- artifacts --------------------------------------------------------------------------

    def log_bytes(self, artifact_file: str, data: bytes) -> None:
        """Write ``data`` as the run's artifact ``artifact_file`` (``dir/name.ext``); logging
        the same name again replaces it."""
        artifact_file = artifact_file.strip("/")
        folder, name = posixpath.split(artifact_file)
        if not name or ".." in artifact_file.split("/"):
            raise ValueError(f"bad artifact name {artifact_file!r}")
        with tempfile.TemporaryDirectory(prefix="ramp-artifact-") as tmp:
            path = os.path.join(tmp, name)
            with open(path, "wb") as f:
                f.write(data)
            self.client.log_artifact(self.run_id, path, artifact_path=folder or None)

    def log_png(self, artifact_file: str, png: bytes) -> None:
        """A PNG image (``plots.*`` return these) as an artifact the MLflow UI previews."""
        if not png.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ValueError(f"{artifact_file}: not PNG bytes")
        self.log_bytes(artifact_file, png)

    def log_figure(self, artifact_file: str, figure: Any) -> None:
        """A matplotlib figure, rendered to PNG."""
        from ramp.platform.tracking.plots import figure_png

        self.log_png(artifact_file, figure_png(figure))

    def log_dict(self, artifact_file: str, obj: Any) -> None:
        """A JSON (``.json``) or YAML (``.yaml``/``.yml``) artifact, e.g. the round manifest."""
        if artifact_file.endswith((".yaml", ".yml")):
            import yaml

            text = yaml.safe_dump(obj, sort_keys=False, width=100)
        else:
            text = json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n"
        self.log_bytes(artifact_file, text.encode())

    def log_text(self, artifact_file: str, text: str) -> None:
        self.log_bytes(artifact_file, text.encode())

    def artifacts(self, path: str | None = None) -> list[str]:
        """Artifact paths under ``path`` (recursive)."""
        out: list[str] = []
        for info in self.client.list_artifacts(self.run_id, path):
            if info.is_dir:
                out.extend(self.artifacts(info.path))
            else:
                out.append(info.path)
        return out

    # -- status -----------------------------------------------------------------------------

    def set_collapse(self, collapsed: bool | Any, reasons: Sequence[str] | None = None) -> None:
        """The advantage-collapse alarm where the dashboard shows it: tag ``ramp.collapse``
        (``ALARM: <reasons>`` or ``ok``), tag ``ramp.collapse.reasons``, metric
        ``collapse/alarm`` (1 = alarm). Takes a bool + reasons or an rl.collapse.CollapseVerdict."""
        if not isinstance(collapsed, bool) and hasattr(collapsed, "collapsed"):
            reasons = list(getattr(collapsed, "reasons", []) or [])
            collapsed = bool(collapsed.collapsed)
        reasons = [str(r) for r in (reasons or [])]
        text = "; ".join(reasons)
        self.set_tags(
            {
                "ramp.collapse": f"ALARM: {text}" if collapsed else "ok",
                "ramp.collapse.reasons": text or "none",
            }
        )
        self.log_metrics({"collapse/alarm": 1.0 if collapsed else 0.0})

    def finish(self, status: str = "FINISHED") -> None:
        """End the run: FINISHED, FAILED or KILLED (RUNNING reopens it)."""
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {STATUSES}")
        if status == "RUNNING":
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.client.set_terminated(self.run_id, status=status)

    def status(self) -> str:
        return self.client.get_run(self.run_id).info.status

    def __enter__(self) -> RunHandle:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """FINISHED, FAILED on an exception, KILLED on Ctrl-C."""
        if exc_type is None:
            self.finish("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("KILLED")
        else:
            self.finish("FAILED")
