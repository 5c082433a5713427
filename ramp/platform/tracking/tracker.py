"""The coordinator's MLflow view of a round: one run per round, one nested run per stage.

Why resumable by id: a round runs for hours and its coordinator can die between any two stages.
The lead keeps the run ids in the round manifest; a re-run of the round passes them back and
continues the SAME runs (status back to RUNNING), so the dashboard shows one row per round and
one child per stage however many times the round was resumed. Without an id (the coordinator
died after creating a run but before saving the manifest), the run is found by its tags instead:
an unfinished run of this round and store is taken over rather than duplicated.

Tags are the links a reader follows: episodes (count + manifest) -> world-model version ->
policy version -> deployment, and the git commit of the code that ran.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ramp.platform.tracking import uri as U
from ramp.platform.tracking.runs import RunHandle, flatten

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

    from ramp.platform.config import RampConfig
    from ramp.platform.tracking.registry import Registry

log = logging.getLogger(__name__)

KIND_TAG = "ramp.kind"  # "round" | "stage"
ROUND_TAG = "ramp.round"
STAGE_TAG = "ramp.stage"
STORE_TAG = "ramp.store"
STORE_ID_TAG = "ramp.store.id"
ATTEMPTS_TAG = "ramp.attempts"
PARENT_TAG = "mlflow.parentRunId"
GIT_TAG = "mlflow.source.git.commit"


class TrackingDisabledError(ValueError):
    """tracking.enabled is false: the caller should not have asked for a tracker."""


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the running code: ``RAMP_GIT_COMMIT``, else ``git rev-parse HEAD`` in the
    source tree (a `ray job submit` working dir has no .git: then None)."""
    if os.environ.get("RAMP_GIT_COMMIT"):
        return os.environ["RAMP_GIT_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


def _quote(value: Any) -> str:
    text = str(value)
    if "'" in text:
        raise ValueError(f"cannot search MLflow for a value with a quote: {text!r}")
    return f"'{text}'"


def _reopen(client: MlflowClient, run: Any) -> None:
    attempts = int(run.data.tags.get(ATTEMPTS_TAG, "1")) + 1
    client.set_tag(run.info.run_id, ATTEMPTS_TAG, str(attempts))
    if run.info.status != "RUNNING":
        client.update_run(run.info.run_id, status="RUNNING")


class StageRun(RunHandle):
    """The nested run of one stage of a round (child of the round's run)."""

    def __init__(self, client: MlflowClient, run_id: str, *, stage: str, resumed: bool) -> None:
        super().__init__(client, run_id, resumed=resumed)
        self.stage = stage


class RoundTracker(RunHandle):
    """The run of one round. Use ``RoundTracker.start``; only the coordinator creates one."""

    def __init__(
        self,
        client: MlflowClient,
        run_id: str,
        *,
        experiment_id: str,
        round_: int,
        root: str,
        tracking: Any,
        resumed: bool,
        s3: Any = None,
    ) -> None:
        super().__init__(client, run_id, resumed=resumed)
        self.experiment_id = experiment_id
        self.round = round_
        self.root = root
        self.tracking = tracking
        self.s3 = s3  # store.s3, for the registry's checkpoint checks
        self.tracking_uri = U.tracking_uri(tracking, root)

    # -- start / resume ---------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        cfg: RampConfig,
        round_: int,
        *,
        run_id: str | None = None,
        root: str | None = None,
    ) -> RoundTracker:
        """Resume the round's run (``run_id`` from the manifest, else an unfinished run of this
        round and store found by its tags) or create it. ``tracker.run_id`` goes into the
        manifest. Raises ConfigError when the config cannot be tracked (S3 store, no server)."""
        tracking = cfg.tracking
        if not tracking.enabled:
            raise TrackingDisabledError("tracking.enabled is false: there is nothing to track to")
        root = root or cfg.store.root
        client = U.make_client(tracking, root)
        eid = U.get_or_create_experiment(
            client,
            U.experiment_name(tracking, cfg.name),
            U.artifact_location(tracking, root),
        )
        sid = U.store_id(root)
        run = cls._find(client, eid, round_, sid, run_id)
        if run is not None:
            _reopen(client, run)
            log.info("MLflow: resumed run %s of round %d", run.info.run_id, round_)
            return cls(
                client,
                run.info.run_id,
                experiment_id=run.info.experiment_id,
                round_=round_,
                root=root,
                tracking=tracking,
                resumed=True,
                s3=cfg.store.s3,
            )
        tags = {
            KIND_TAG: "round",
            ROUND_TAG: str(round_),
            STORE_TAG: str(root),
            STORE_ID_TAG: sid,
            ATTEMPTS_TAG: "1",
            "ramp.config": cfg.name,
            "mlflow.source.name": "ramp round",
        }
        commit = git_commit()
        if commit:
            tags[GIT_TAG] = commit
            tags["ramp.git_commit"] = commit
        created = client.create_run(eid, run_name=f"round-{round_}", tags=tags)
        log.info("MLflow: run %s for round %d", created.info.run_id, round_)
        return cls(
            client,
            created.info.run_id,
            experiment_id=eid,
            round_=round_,
            root=root,
            tracking=tracking,
            resumed=False,
            s3=cfg.store.s3,
        )

    @staticmethod
    def _find(
        client: MlflowClient, eid: str, round_: int, sid: str, run_id: str | None
    ) -> Any | None:
        from mlflow.exceptions import MlflowException

        if run_id:
            try:
                run = client.get_run(run_id)
            except MlflowException as e:
                log.warning("MLflow run %s from the manifest is gone (%s)", run_id, e.error_code)
            else:
                other = run.data.tags.get(ROUND_TAG) not in (None, str(round_))
                if run.info.lifecycle_stage == "active" and not other:
                    return run
                log.warning(
                    "MLflow run %s from the manifest was deleted or is another round's", run_id
                )
        found = client.search_runs(
            [eid],
            filter_string=(
                f"tags.`{KIND_TAG}` = 'round' and tags.`{ROUND_TAG}` = {_quote(round_)} "
                f"and tags.`{STORE_ID_TAG}` = {_quote(sid)} and attributes.status != 'FINISHED'"
            ),
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return found[0] if found else None

    # -- stages -----------------------------------------------------------------------------

    def stage(self, name: str, *, run_id: str | None = None) -> StageRun:
        """Start or resume the nested run of stage ``name`` (its id goes into the manifest's
        stage record). Usable as a context manager: FINISHED / FAILED / KILLED on exit."""
        from mlflow.exceptions import MlflowException

        run = None
        if run_id:
            try:
                run = self.client.get_run(run_id)
            except MlflowException as e:
                log.warning("MLflow stage run %s is gone (%s)", run_id, e.error_code)
            if run is not None and (
                run.data.tags.get(PARENT_TAG) != self.run_id or run.info.lifecycle_stage != "active"
            ):
                run = None
        if run is None:
            found = self.client.search_runs(
                [self.experiment_id],
                filter_string=(
                    f"tags.`{PARENT_TAG}` = {_quote(self.run_id)} "
                    f"and tags.`{STAGE_TAG}` = {_quote(name)}"
                ),
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            run = found[0] if found else None
        if run is not None:
            _reopen(self.client, run)
            return StageRun(self.client, run.info.run_id, stage=name, resumed=True)
        created = self.client.create_run(
            self.experiment_id,
            run_name=f"r{self.round}-{name}",
            tags={
                PARENT_TAG: self.run_id,
                KIND_TAG: "stage",
                STAGE_TAG: name,
                ROUND_TAG: str(self.round),
                STORE_ID_TAG: U.store_id(self.root),
                ATTEMPTS_TAG: "1",
            },
        )
        return StageRun(self.client, created.info.run_id, stage=name, resumed=False)

    def stage_runs(self) -> dict[str, str]:
        """{stage name: run id} of this round's nested runs."""
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = {_quote(self.run_id)}"
        )
        return {r.data.tags.get(STAGE_TAG, r.info.run_id): r.info.run_id for r in runs}

    # -- round-level records ----------------------------------------------------------------

    def log_config(self, cfg: RampConfig) -> list[str]:
        """The config as flattened params (``training.policy.lr`` ...; long values truncated,
        secrets redacted) plus the complete resolved YAML as artifact ``config.yaml``. Returns
        keys whose value changed since an earlier attempt (kept as first logged)."""
        from ramp.platform.config import dump_config

        changed = self.log_params(flatten(cfg.model_dump(mode="json")))
        self.log_text("config.yaml", dump_config(cfg))
        return changed

    def log_manifest(self, manifest: Any) -> None:
        """The round manifest (a RoundManifest or its dict) as artifact ``manifest.json``."""
        data = manifest.model_dump(mode="json") if hasattr(manifest, "model_dump") else manifest
        self.log_dict("manifest.json", data)

    def link(
        self,
        *,
        episodes: int | None = None,
        world_model: str | None = None,
        policy: str | None = None,
        deployment: str | None = None,
        **extra: Any,
    ) -> None:
        """Tags that chain a round's data to what it produced: ``ramp.episodes.count``,
        ``ramp.episodes.manifest`` (where the frozen ids are), ``ramp.world_model.version``,
        ``ramp.policy.version``, ``ramp.deployment`` (the version live after the round), plus
        ``ramp.<key>`` for each extra keyword. None values are left as they are."""
        tags: dict[str, Any] = {
            "ramp.world_model.version": world_model,
            "ramp.policy.version": policy,
            "ramp.deployment": deployment,
        }
        if episodes is not None:
            tags["ramp.episodes.count"] = int(episodes)
            root = str(U.local_root_path(self.root)) if U.is_local_root(self.root) else self.root
            tags["ramp.episodes.manifest"] = f"{root}/rounds/{self.round}/manifest.json"
        tags.update({f"ramp.{k}": v for k, v in extra.items()})
        self.set_tags(tags)

    @functools.cached_property
    def registry(self) -> Registry | None:
        """The model registry of this tracking server, for this store; None when
        ``tracking.registry`` is false."""
        from ramp.platform.tracking.registry import Registry

        if not self.tracking.registry:
            return None
        return Registry(self.client, self.tracking, self.root, self.s3)

    def url(self, run_id: str | None = None) -> str | None:
        """The run's page on a tracking server (None for a local database: see `ramp dashboard`)."""
        if not U.is_server_uri(self.tracking_uri):
            return None
        base = self.tracking_uri.rstrip("/")
        return f"{base}/#/experiments/{self.experiment_id}/runs/{run_id or self.run_id}"
