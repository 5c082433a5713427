"""Settings of the serving endpoint (section ``serve`` of a ramp config).

Pure pydantic (no ray, no torch): ``ramp.platform.config`` composes this section, so a typo in
``serve:`` fails at ``ramp config check`` time with a "did you mean", like every other section.

Resources are fractional and come from here (STYLE.md): the default (one replica of 0.5 CPU
that serves HTTP/WebSocket and runs the policy) leaves room for a trainer on a 2-CPU machine.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from ramp.platform.base import StrictModel

ROBOT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MIN_TOKEN_CHARS = 16
TOKENS_ENV = "RAMP_ROBOT_TOKENS"
MiB = 1 << 20


class RateLimitConfig(StrictModel):
    """A token bucket per robot: ``burst`` requests at once, refilled at ``requests_per_s``.

    Each replica keeps its own buckets, so with ``replicas: N`` a robot may reach up to N x the
    rate (docs/api.md, "Rate limits"). One replica (the default) enforces it exactly.
    """

    requests_per_s: float = Field(default=100.0, gt=0, description="sustained rate per robot")
    burst: int = Field(default=200, ge=1, description="requests a robot may send at once")


class OpenpiConfig(StrictModel):
    """How an openpi observation dict maps onto ramp's observation (route ``/v1/openpi``).

    openpi clients send flat keys such as ``observation/image`` (LIBERO examples) or nested dicts
    such as ``{"images": {"cam_high": ...}, "state": ...}`` (ALOHA examples); nested dicts are
    flattened with "/" before the mapping below applies.
    """

    embodiment: str | None = Field(
        default=None,
        description="embodiment of openpi observations without an 'embodiment' key; None: the "
        "only embodiment the checkpoint serves",
    )
    cameras: dict[str, str] = Field(
        default_factory=dict,
        description="openpi key -> camera name; empty: 'observation/<cam>', 'images/<cam>', "
        "'observation/images/<cam>' for each declared camera, plus 'observation/image' and "
        "'observation/wrist_image' for the first and second declared camera",
    )
    state_keys: list[str] | None = Field(
        default=None,
        description="keys concatenated, in order, into the state; None: 'observation/state', "
        "else 'state'",
    )
    prompt_key: str = Field(default="prompt", description="the key holding the instruction")


class ServeConfig(StrictModel):
    """Section ``serve``: the Ray Serve application robots talk to (docs/api.md)."""

    host: str = Field(default="127.0.0.1", description="address the HTTP proxy binds")
    port: int = Field(default=8000, ge=1, le=65535)
    checkpoint: str | None = Field(
        default=None,
        description="policy to serve: a version under <root>/checkpoints/policy/, 'latest', or a "
        "checkpoint folder path",
    )
    world_model: str | None = Field(
        default=None,
        description="world model for mode 'standard': a version, 'latest', or a folder path",
    )
    mode: Literal["efficient", "standard"] = Field(
        default="efficient",
        description="efficient: the policy alone; standard: a world-model deployment predicts "
        "the future-state tokens and value in front of the policy",
    )
    max_batch_size: int = Field(
        default=16, ge=1, le=1024, description="concurrent requests fused into one forward pass"
    )
    batch_wait_timeout_s: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="how long a request reaching an idle model waits for company; requests that "
        "arrive while a batch runs always join the next batch (continuous batching)",
    )
    replicas: int = Field(
        default=1, ge=1, le=1024, description="policy replicas (each serves HTTP/WS and infers)"
    )
    num_cpus: float = Field(default=0.5, gt=0, description="CPUs per policy replica")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs per policy replica")
    world_model_num_cpus: float = Field(default=0.5, gt=0)
    world_model_num_gpus: float = Field(default=0.0, ge=0)
    torch_threads: int = Field(
        default=1, ge=1, le=256, description="torch intra-op threads per model replica"
    )
    max_ongoing_requests: int = Field(
        default=512,
        ge=8,
        description="per policy replica; an open WebSocket session holds one for its lifetime",
    )
    num_steps: int | None = Field(
        default=None, ge=1, le=1000, description="flow-matching steps at inference; None: model's"
    )
    cfg_beta: float = Field(default=1.0, ge=0, description="classifier-free guidance on I")
    auth: Literal["tokens", "none"] = Field(
        default="tokens",
        description="tokens: every /v1 route needs a robot token; none: open (loopback only)",
    )
    tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description=f"robot name -> token; merged with ${TOKENS_ENV} "
        "('robot-a=TOKEN,robot-b=TOKEN'), which wins for a robot in both",
    )
    tokens_env: str = Field(default=TOKENS_ENV, pattern=r"^[A-Z_][A-Z0-9_]*$")
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    rate_limits: dict[str, RateLimitConfig] = Field(
        default_factory=dict, description="per-robot overrides of rate_limit"
    )
    max_request_bytes: int = Field(
        default=8 * MiB, ge=1024, description="largest /v1/act body or WebSocket message"
    )
    max_episode_bytes: int = Field(
        default=512 * MiB, ge=1024, description="largest /v1/episodes upload"
    )
    tasks: dict[str, str] = Field(
        default_factory=dict,
        description="task name -> instruction, added to the tasks saved with the checkpoint",
    )
    load_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="ramp deploy: every replica must have loaded the new version by then, "
        "else the deploy is aborted (the live version keeps serving)",
    )
    openpi: OpenpiConfig = Field(default_factory=OpenpiConfig)

    @field_validator("tokens")
    @classmethod
    def _tokens(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        seen: dict[str, str] = {}
        for robot, token in v.items():
            check_robot_token(robot, token.get_secret_value(), "serve.tokens")
            if token.get_secret_value() in seen:
                raise ValueError(
                    f"robots {seen[token.get_secret_value()]!r} and {robot!r} share "
                    "a token; give every robot its own"
                )
            seen[token.get_secret_value()] = robot
        return v

    @field_validator("rate_limits")
    @classmethod
    def _robot_names(cls, v: dict[str, RateLimitConfig]) -> dict[str, RateLimitConfig]:
        for robot in v:
            if not re.match(ROBOT_PATTERN, robot):
                raise ValueError(f"robot name {robot!r} must match {ROBOT_PATTERN}")
        return v

    @model_validator(mode="after")
    def _open_only_on_loopback(self) -> ServeConfig:
        if self.auth == "none" and not is_loopback(self.host):
            raise ValueError(
                f"serve.auth 'none' is only allowed on a loopback host, not {self.host!r}; "
                "give robots tokens (serve.tokens or $RAMP_ROBOT_TOKENS)"
            )
        return self


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_robot_token(robot: str, token: str, where: str) -> None:
    """Refuse a bad robot name or a weak token; the message never contains the token."""
    if not re.match(ROBOT_PATTERN, robot):
        raise ValueError(f"{where}: robot name {robot!r} must match {ROBOT_PATTERN}")
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ValueError(
            f"{where}: the token of robot {robot!r} must have at least {MIN_TOKEN_CHARS} "
            "characters and no spaces; make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
