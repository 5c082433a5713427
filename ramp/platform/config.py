"""Every ramp setting as a pydantic model, loaded from YAML.

Why a strict schema: a misspelt key in a nightly `ray job submit` should fail at submit time with
the file, the line, what is allowed and a "did you mean", not silently fall back to a default an
hour into the job. So every model forbids unknown keys and every default of the method (PAPER.md)
is a field here, never a constant in code.

Sections are owned by the part of ramp that reads them (the RL settings live next to the RL maths
in ``ramp.platform.rl.settings``); this module composes them into one ``RampConfig``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ramp.deploy.settings import ServeConfig

# Defined in base.py to avoid an import cycle with the section modules; re-exported here.
from ramp.platform.base import StrictModel, deep_merge, did_you_mean
from ramp.platform.envs.settings import EnvsConfig
from ramp.platform.models.settings import ModelsConfig
from ramp.platform.rl.settings import RLConfig
from ramp.platform.rounds.settings import RoundConfig
from ramp.platform.tracking.settings import TrackingConfig
from ramp.platform.training.settings import TrainingConfig

CONFIG_FORMAT_VERSION = 1
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CAMERA_PATTERN = r"^[a-z0-9][a-z0-9_]{0,31}$"


# --------------------------------------------------------------------------- embodiments


class CameraConfig(StrictModel):
    """One camera of an embodiment; frames are stored as uint8 height x width x 3."""

    height: int = Field(ge=8, le=2048, description="image height in pixels")
    width: int = Field(ge=8, le=2048, description="image width in pixels")


class EmbodimentConfig(StrictModel):
    """What a robot (or simulated robot) looks like to the store, the models and the server.

    Episodes of an embodiment that is not declared are refused: without the declared state and
    action dimensions nothing downstream can check or normalise them.
    """

    cameras: dict[str, CameraConfig] = Field(min_length=1)
    state_names: list[str] = Field(min_length=1)
    action_names: list[str] = Field(min_length=1)
    action_low: list[float]
    action_high: list[float]
    fps: float = Field(default=10.0, gt=0, le=1000)

    @field_validator("cameras")
    @classmethod
    def _camera_names(cls, v: dict[str, CameraConfig]) -> dict[str, CameraConfig]:
        for name in v:
            if not re.match(CAMERA_PATTERN, name):
                raise ValueError(
                    f"camera name {name!r} must match {CAMERA_PATTERN} "
                    "(lower-case letters, digits, underscores; it becomes column image.<camera>)"
                )
        return v

    @model_validator(mode="after")
    def _bounds(self) -> EmbodimentConfig:
        n = len(self.action_names)
        for field in ("action_low", "action_high"):
            got = len(getattr(self, field))
            if got != n:
                raise ValueError(f"{field} has {got} values but action_names has {n}")
        for i, (lo, hi) in enumerate(zip(self.action_low, self.action_high, strict=True)):
            if not lo < hi:
                raise ValueError(
                    f"action bound {self.action_names[i]!r}: action_low ({lo}) must be "
                    f"below action_high ({hi})"
                )
        for field in ("state_names", "action_names"):
            names = getattr(self, field)
            dup = sorted({x for x in names if names.count(x) > 1})
            if dup:
                raise ValueError(f"{field} has duplicates: {dup}")
        return self

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)


# --------------------------------------------------------------------------- store


class S3Config(StrictModel):
    """How to reach an S3-compatible server for `s3://` roots.

    Unset fields fall back to the standard AWS environment variables (AWS_ENDPOINT_URL,
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION), so one config works on a laptop and
    on a cluster whose nodes carry their own credentials.
    """

    endpoint_url: str | None = Field(
        default=None, description="e.g. http://127.0.0.1:7480 (Ceph RGW); default: AWS_ENDPOINT_URL"
    )
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    region: str | None = Field(default=None, description="default: AWS_REGION, else us-east-1")
    client: Literal["pyarrow", "s3fs"] = Field(
        default="pyarrow", description="pyarrow's native S3 client, or s3fs (fsspec) via pyarrow"
    )
    connect_timeout_s: float = Field(default=5.0, gt=0)
    request_timeout_s: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(
        default=6, ge=1, le=20, description="attempts per request; transient errors back off"
    )
    create_bucket: bool = Field(default=False, description="create the bucket if it is missing")


class StoreConfig(StrictModel):
    """Where episodes, labels, checkpoints and round manifests live, and how frames are encoded."""

    root: str = Field(
        default="./ramp-data",
        description="a local path or s3://bucket/prefix; everything ramp writes lives under it",
    )
    image_encoding: Literal["raw", "png", "jpeg"] = Field(
        default="raw",
        description="how camera frames are stored; raw (+ the file's zstd) was measured best, "
        "see docs/episode-format.md",
    )
    jpeg_quality: int = Field(default=95, ge=1, le=100)
    compression: Literal["zstd", "lz4", "snappy", "none"] = "zstd"
    compression_level: int = Field(default=1, ge=1, le=22, description="zstd level")
    s3: S3Config = Field(default_factory=S3Config)
    verify_on_read: bool = Field(
        default=True,
        description="check schema and metadata of every file read; bad files go to quarantine/",
    )


# --------------------------------------------------------------------------- training samples


class SamplingConfig(StrictModel):
    """The training-sample iterator: which steps of which episodes a trainer sees, in what order."""

    chunk_size: int = Field(default=50, ge=1, le=1024, description="action chunk length H")
    future_offsets: list[int] = Field(
        default_factory=lambda: [12, 24, 36, 48],
        description="steps ahead of t whose frames the world model predicts (PAPER.md sec. 2)",
    )
    shuffle_window: int = Field(
        default=64,
        ge=1,
        description="episodes whose steps are shuffled together; bigger mixes more, costs memory",
    )
    seed: int = 0
    drop_last: bool = Field(
        default=True,
        description="give every rank the same number of samples (DDP hangs on uneven inputs)",
    )

    @field_validator("future_offsets")
    @classmethod
    def _offsets(cls, v: list[int]) -> list[int]:
        if any(o < 1 for o in v):
            raise ValueError(f"future_offsets must be positive step counts, got {v}")
        if sorted(set(v)) != v:
            raise ValueError(f"future_offsets must be strictly increasing, got {v}")
        return v


# --------------------------------------------------------------------------- the whole config


class RampConfig(StrictModel):
    """One YAML file: everything a `ramp` command needs."""

    format_version: int = Field(default=CONFIG_FORMAT_VERSION, ge=1, le=CONFIG_FORMAT_VERSION)
    name: str = Field(default="ramp", pattern=NAME_PATTERN)
    store: StoreConfig = Field(default_factory=StoreConfig)
    embodiments: dict[str, EmbodimentConfig] = Field(default_factory=dict)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    rl: RLConfig = Field(default_factory=RLConfig)
    envs: EnvsConfig = Field(default_factory=EnvsConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    round: RoundConfig = Field(default_factory=RoundConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @field_validator("embodiments")
    @classmethod
    def _embodiment_names(cls, v: dict[str, EmbodimentConfig]) -> dict[str, EmbodimentConfig]:
        for name in v:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"embodiment name {name!r} must match {NAME_PATTERN}")
        return v

    @model_validator(mode="after")
    def _models_fit_sampling(self) -> RampConfig:
        """Trainers draw samples by `sampling`; models that cannot take them fail at load time
        (at `ray job submit`), not an hour into the first fit."""
        self.models.check_sampling(self.sampling.chunk_size, list(self.sampling.future_offsets))
        return self


# --------------------------------------------------------------------------- loading + errors


class ConfigError(ValueError):
    """A config that cannot be used; the message says where and what to do."""

    def __init__(self, source: str, problems: Sequence[str]):
        self.source = source
        self.problems = list(problems)
        lines = [f"invalid config {source}:"] + [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


class UnknownNameError(ValueError):
    """A name that no registry entry has (an env, a preset, a benchmark, ...)."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        choices = sorted(choices)
        self.kind, self.name, self.choices = kind, name, choices
        super().__init__(
            f"unknown {kind} {name!r}{did_you_mean(name, choices)}; "
            f"available: {', '.join(choices) or 'none'}"
        )


def _annotation_model(annotation: Any) -> Any:
    """The pydantic model inside an annotation such as `dict[str, M]`, `list[M]` or `M | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _annotation_model(arg)
        if found is not None:
            return found
    return None


def _model_at(model: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """Walk a validation error location down the model tree to the model that owns its last key."""
    current: Any = model
    i = 0
    while i < len(loc):
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(loc[i]))
        if field is None:
            return current if i == len(loc) - 1 else None
        annotation = field.annotation
        origin = getattr(annotation, "__origin__", None)
        i += 1
        if origin in (dict, list) and i < len(loc):
            i += 1  # skip the dict key / list index
        current = _annotation_model(annotation)
    return current if isinstance(current, type) else None


def _line_of(node: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """1-based line of the YAML node at `loc`, or of its nearest existing parent."""
    line = None
    for key in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if k.value == str(key):
                    line = k.start_mark.line + 1
                    nxt = v
                    break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            node = None
    return line


def _describe(err: dict[str, Any], root: type[BaseModel], node: yaml.Node | None) -> str:
    loc = [x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-"))]
    path = ".".join(str(x) for x in loc) or "(top level)"
    line = _line_of(node, loc)
    where = f"line {line}: " if line else ""
    if err["type"] == "extra_forbidden":
        owner = _model_at(root, loc)
        allowed = sorted(owner.model_fields) if owner else []
        section = ".".join(str(x) for x in loc[:-1]) or "top level"
        hint = did_you_mean(str(loc[-1]), allowed)
        return (
            f"{where}{path}: unknown key {str(loc[-1])!r} in {section}{hint}; "
            f"allowed: {', '.join(allowed)}"
        )
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    return f"{where}{path}: {msg}{shown}"


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """`["a.b=1", "c=x"]` -> nested dict; values are parsed as YAML so numbers and lists work."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(
                "--set", [f"{pair!r} is not KEY=VALUE (for example store.root=/data)"]
            )
        key, raw = pair.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError("--set", [f"{pair!r} has an empty key"])
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError("--set", [f"{key!r} conflicts with another --set"])
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def builtin_configs_dir() -> Path:
    """configs/ of the source tree (ramp is installed editable; see README)."""
    return Path(__file__).resolve().parents[2] / "configs"


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A path, or the name of a built-in config (`quickstart` -> configs/quickstart.yaml)."""
    p = Path(name_or_path)
    if p.exists():
        return p
    if p.suffix == "" and len(p.parts) == 1:
        candidate = builtin_configs_dir() / f"{p.name}.yaml"
        if candidate.exists():
            return candidate
        names = sorted(x.stem for x in builtin_configs_dir().glob("*.yaml"))
        raise ConfigError(
            str(name_or_path),
            [
                f"no such file, and no built-in config of that name{did_you_mean(p.name, names)}; "
                f"built-in: {', '.join(names) or 'none'}"
            ],
        )
    raise ConfigError(str(name_or_path), ["no such file"])


def _line_key(problem: str) -> tuple[int, str]:
    """Sort problems by their YAML line (those without one last)."""
    m = re.match(r"line (\d+): ", problem)
    return (int(m.group(1)) if m else 10**9, problem)


def validate_config(data: Any, source: str = "<dict>", node: yaml.Node | None = None) -> RampConfig:
    """Validate a parsed mapping into a RampConfig, turning pydantic's errors into ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [f"the top level must be a mapping, got {type(data).__name__}"])
    try:
        return RampConfig.model_validate(data)
    except ValidationError as e:
        described = [_describe(err, RampConfig, node) for err in e.errors()]
        raise ConfigError(source, sorted(described, key=_line_key)) from None


def load_config(
    name_or_path: str | Path | None = None, overrides: Sequence[str] = ()
) -> RampConfig:
    """Load and validate a YAML config (or the defaults when None), applying KEY=VALUE overrides."""
    if name_or_path is None:
        return validate_config(parse_overrides(overrides), "<defaults>")
    path = resolve_config_path(name_or_path)
    text = path.read_text()
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(str(path), [f"not valid YAML: {e}"]) from None
    if overrides:
        if data is not None and not isinstance(data, dict):
            raise ConfigError(str(path), ["the top level must be a mapping"])
        data = deep_merge(data or {}, parse_overrides(overrides))
    return validate_config(data, str(path), node)


def dump_config(cfg: RampConfig) -> str:
    """The resolved config as YAML (every default spelled out), for `ramp config check`."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, width=100)


JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray in the driver of a `ray job submit` job


def with_absolute_root(cfg: RampConfig) -> RampConfig:
    """The config with a relative local ``store.root`` made absolute against this process' cwd.

    Ray workers and Serve replicas run in other directories: a relative root would point each of
    them somewhere else. Inside a submitted Ray job the cwd is the job's temporary copy of its
    working dir, deleted after the job, so a relative root there is refused instead.
    """
    import os

    root = cfg.store.root
    if "://" in root or os.path.isabs(root):
        return cfg
    if os.environ.get(JOB_ENV):
        raise ConfigError(
            "<config>",
            [
                f"store.root {root!r} is relative: inside a Ray job it would resolve into the "
                "job's temporary working dir and be lost when the job ends; give an absolute "
                "path (e.g. --set store.root=$PWD/ramp-data on the submitting shell) or s3://..."
            ],
        )
    store = cfg.store.model_copy(update={"root": os.path.abspath(root)})
    return cfg.model_copy(update={"store": store})
