"""The MLflow model registry as ramp uses it: a version per checkpoint, aliases candidate and
production, and the way back from an alias to a ramp version.

Why no weights in MLflow: checkpoints already live in the store (``<root>/checkpoints/<kind>/
<version>/``, written once, content-hashed); copying them into MLflow's artifact store would
double the storage and give two truths. A model version POINTS at the checkpoint folder:

- source: the folder itself where the registry accepts it: any path with a SQLite/file registry,
  and an ``s3://`` URI with a server. An ``mlflow server`` refuses local paths as sources (its
  guard against reading the server's own disk, MLflow >= 2.x), so a local store tracked by a
  server gets ``runs:/<run id>/ramp-checkpoints/<kind>/<version>`` instead: a small pointer
  JSON logged to the registering run (no weights), which needs the run id.
- tags, always: ``ramp.version`` (what ``deploy/versions.resolve`` loads), ``ramp.kind``,
  ``ramp.checkpoint`` (the folder's full path or URI), ``ramp.store``, ``ramp.store.id``.

The registry's truth is the store: an alias resolves to a ramp version, which resolves to a
checkpoint in the store (so a store moved to another path keeps working).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ramp.platform.tracking import uri as U
from ramp.platform.tracking.runs import TAG_VALUE_LIMIT, truncate
from ramp.platform.tracking.settings import TrackingConfig

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

KINDS = ("policy", "world-model")
ALIASES = ("candidate", "production")
VERSION_TAG = "ramp.version"
CHECKPOINTS_DIR = "checkpoints"
POINTER_DIR = "ramp-checkpoints"


class RegistryError(ValueError):
    """A registry request that cannot be met; the message says what and where."""


@dataclass(frozen=True)
class RegisteredVersion:
    """One ramp checkpoint as an MLflow model version."""

    kind: str  # "policy" | "world-model"
    version: str  # the ramp version, policy-r3-1a2b3c4d
    model: str  # registered model name, ramp-policy
    number: str  # MLflow's version number, "7"
    source: str
    aliases: tuple[str, ...]


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise RegistryError(f"unknown checkpoint kind {kind!r}; one of {', '.join(KINDS)}")


def _check_alias(alias: str) -> None:
    import re

    # MLflow reserves v<digits> and "latest"; ramp uses candidate and production but allows others
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$", alias) or re.match(r"^v\d+$", alias):
        raise RegistryError(f"{alias!r} is not a usable alias (e.g. {', '.join(ALIASES)})")
    if alias.lower() == "latest":
        raise RegistryError("'latest' is reserved by MLflow; use ramp's own 'latest' version")


class Registry:
    """Registered models ``tracking.policy_model`` / ``tracking.world_model_model`` of one store."""

    def __init__(
        self, client: MlflowClient, tracking: TrackingConfig, root: str, s3: Any = None
    ) -> None:
        self.client = client
        self.tracking = tracking
        self.root = root
        self.s3 = s3  # store.s3 settings, to check an S3 checkpoint exists
        self.uri = U.tracking_uri(tracking, root)

    @classmethod
    def from_config(cls, cfg: Any, root: str | None = None) -> Registry:
        """The registry of a RampConfig (``root`` defaults to ``cfg.store.root``)."""
        root = root or cfg.store.root
        return cls(U.make_client(cfg.tracking, root), cfg.tracking, root, cfg.store.s3)

    def model_name(self, kind: str) -> str:
        _check_kind(kind)
        return self.tracking.policy_model if kind == "policy" else self.tracking.world_model_model

    def checkpoint_uri(self, kind: str, version: str) -> str:
        """The checkpoint folder's full path (local store) or URI (S3)."""
        rel = f"{CHECKPOINTS_DIR}/{kind}/{version}"
        if U.is_local_root(self.root):
            return str(U.local_root_path(self.root) / rel)
        return f"{str(self.root).rstrip('/')}/{rel}"

    def _checkpoint_exists(self, kind: str, version: str) -> bool:
        from ramp.platform.episodes.fs import StoreFS

        fs = StoreFS.from_root(self.root, s3=self.s3)
        return fs.exists(f"{CHECKPOINTS_DIR}/{kind}/{version}/config.json")

    def _ensure_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
            return
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
        try:
            self.client.create_registered_model(
                name, description="ramp checkpoints; aliases: candidate, production"
            )
        except MlflowException as e:  # created concurrently
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    @staticmethod
    def _info(kind: str, mv: Any) -> RegisteredVersion:
        return RegisteredVersion(
            kind=kind,
            version=mv.tags.get(VERSION_TAG, ""),
            model=mv.name,
            number=str(mv.version),
            source=mv.source,
            aliases=tuple(mv.aliases or ()),
        )

    def find(self, kind: str, version: str) -> RegisteredVersion | None:
        """The model version registered for ramp ``version`` (the oldest if several), or None."""
        from mlflow.exceptions import MlflowException

        name = self.model_name(kind)
        if "'" in version:
            raise RegistryError(f"bad version {version!r}")
        try:
            found = self.client.search_model_versions(
                f"name = '{name}' and tags.`{VERSION_TAG}` = '{version}'"
            )
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        if not found:
            return None
        return self._info(kind, min(found, key=lambda mv: int(mv.version)))

    def register(
        self,
        kind: str,
        version: str,
        *,
        run_id: str | None = None,
        tags: dict[str, Any] | None = None,
        description: str | None = None,
    ) -> RegisteredVersion:
        """Register checkpoint ``version`` (idempotent: an existing registration is returned).

        ``run_id`` (the stage run that trained it) links the version to its run; it is required
        for a local store tracked by a server (see the module docstring).
        """
        existing = self.find(kind, version)
        if existing is not None:
            return existing
        if not self._checkpoint_exists(kind, version):
            raise RegistryError(
                f"cannot register {kind} {version}: {self.checkpoint_uri(kind, version)} is not "
                "a complete checkpoint (no config.json)"
            )
        name = self.model_name(kind)
        self._ensure_model(name)
        folder = self.checkpoint_uri(kind, version)
        source = folder
        if U.is_server_uri(self.uri) and U.is_local_root(self.root):
            if not run_id:
                raise RegistryError(
                    f"registering {version} on the server {self.uri} needs a run id: the server "
                    "refuses local paths as model sources, so a pointer is logged to the run"
                )
            pointer_dir = f"{POINTER_DIR}/{kind}/{version}"
            pointer = {"store": str(self.root), "checkpoint": folder, "version": version}
            from ramp.platform.tracking.runs import RunHandle

            RunHandle(self.client, run_id).log_dict(f"{pointer_dir}/checkpoint.json", pointer)
            source = f"runs:/{run_id}/{pointer_dir}"
        all_tags = {
            VERSION_TAG: version,
            "ramp.kind": kind,
            "ramp.checkpoint": folder,
            "ramp.store": str(self.root),
            "ramp.store.id": U.store_id(self.root),
            **(tags or {}),
        }
        mv = self.client.create_model_version(
            name,
            source,
            run_id=run_id,
            tags={k: truncate(str(v), TAG_VALUE_LIMIT) for k, v in all_tags.items()},
            description=description,
            await_creation_for=0,  # no weights are copied: the version is READY at once
        )
        log.info("registered %s %s as %s version %s", kind, version, name, mv.version)
        return self._info(kind, mv)

    def set_alias(
        self, kind: str, alias: str, version: str, *, run_id: str | None = None
    ) -> RegisteredVersion:
        """Point ``alias`` (candidate, production, ...) at ramp ``version``, registering it
        first if needed. An alias names one version at a time: setting it moves it."""
        _check_alias(alias)
        info = self.register(kind, version, run_id=run_id)
        self.client.set_registered_model_alias(info.model, alias, info.number)
        return RegisteredVersion(
            info.kind,
            info.version,
            info.model,
            info.number,
            info.source,
            tuple(sorted({*info.aliases, alias})),
        )

    def promote(self, kind: str, version: str, *, run_id: str | None = None) -> RegisteredVersion:
        """``production`` -> ``version`` (``candidate`` stays where it was: the last candidate)."""
        return self.set_alias(kind, "production", version, run_id=run_id)

    def alias(self, kind: str, alias: str) -> str | None:
        """The ramp version behind ``alias``, or None when the alias (or model) is not set."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(self.model_name(kind), alias)
        except MlflowException as e:
            if e.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        version = mv.tags.get(VERSION_TAG)
        if not version:
            raise RegistryError(
                f"{mv.name} version {mv.version} (alias {alias!r}) has no {VERSION_TAG} tag: "
                "it was not registered by ramp"
            )
        return version

    def aliases(self, kind: str) -> dict[str, str]:
        """{alias: ramp version} of the kind's registered model."""
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(self.model_name(kind))
        except MlflowException as e:
            if e.error_code == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise
        out = {}
        for alias, number in (model.aliases or {}).items():
            mv = self.client.get_model_version(model.name, str(number))
            out[alias] = mv.tags.get(VERSION_TAG, "")
        return out

    def clear_alias(self, kind: str, alias: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_registered_model_alias(self.model_name(kind), alias)
        except MlflowException as e:
            if e.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise


def resolve_alias(tracking: TrackingConfig, root: str, kind: str, alias: str) -> str:
    """The ramp version behind registry ``alias`` for ``deploy/versions.resolve``.

    Raises RegistryError (a ValueError) when tracking/registry is off or the alias is unset, and
    TrackingUnavailableError when the server does not answer.
    """
    if not tracking.enabled or not tracking.registry:
        raise RegistryError(
            f"{alias!r} is a registry alias, but tracking"
            f"{'.registry' if tracking.enabled else '.enabled'} is false in the config; give a "
            "version (policy-r3-1a2b3c4d), 'latest' or a checkpoint folder"
        )
    registry = Registry(U.make_client(tracking, root), tracking, root)
    version = registry.alias(kind, alias)
    if version is None:
        raise RegistryError(
            f"no {kind} version has the alias {alias!r} in registered model "
            f"{registry.model_name(kind)!r} at {registry.uri}; known aliases: "
            f"{json.dumps(registry.aliases(kind))}"
        )
    return version
