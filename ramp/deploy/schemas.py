"""Pydantic models of the HTTP bodies, for the OpenAPI schema only (docs/api.md has the prose).

The routes decode bodies themselves (JSON or msgpack, validated against the served embodiments by
``protocol.py``); these models describe the JSON form so that ``/openapi.json`` documents every
route and schema-driven tools (schemathesis) can exercise them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class NDArray(BaseModel):
    """An array in compact JSON form (msgpack bodies carry the same keys with raw bytes)."""

    model_config = ConfigDict(populate_by_name=True)

    ndarray: Literal[True] = Field(alias="__ndarray__")
    dtype: str = Field(description="numpy dtype string, e.g. '|u1' (uint8) or '<f4' (float32)")
    shape: list[int]
    data: str = Field(description="base64 of the C-order bytes")


Image = list[list[list[int]]] | NDArray
Vector = list[float] | NDArray


class ObservationIn(BaseModel):
    """POST /v1/act body (and one /v1/stream frame)."""

    embodiment: str = Field(description="one of the embodiments GET /v1/version lists")
    images: dict[str, Image] = Field(description="camera -> (H, W, 3) uint8, every camera")
    state: Vector = Field(description="the embodiment's state_dim values, finite")
    instruction: str | None = Field(default=None, description="language instruction")
    task: str | None = Field(default=None, description="a known task (its instruction is used)")
    request_id: str | None = Field(default=None, description="echoed in the answer")


class Timing(BaseModel):
    infer_ms: float = Field(description="model time of the batch this request rode in")
    queue_ms: float = Field(description="wait in the policy replica before the batch ran")
    server_ms: float = Field(description="time inside the server, body decoding included")
    batch_size: int


class Clipped(BaseModel):
    values: int = Field(description="action values clipped to the embodiment's bounds")
    dims: list[str] = Field(description="action dimensions that had a value clipped")


class ActionOut(BaseModel):
    """POST /v1/act answer."""

    actions: list[list[float]] = Field(description="(chunk_size, action_dim), embodiment units")
    policy_version: str
    embodiment: str
    mode: Literal["efficient", "standard"]
    clipped: Clipped
    timing: Timing
    request_id: str | None = None


class ErrorDetail(BaseModel):
    status: int
    code: str = Field(description="machine-readable, e.g. invalid_observation, rate_limited")
    field: str = Field(description="the offending field, e.g. images.front or state[3]")
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


class EpisodeIn(BaseModel):
    """POST /v1/episodes body: one finished episode (T steps)."""

    episode_id: str = Field(description="globally unique, e.g. <robot>-<utc time>-<counter>")
    embodiment: str
    task: str
    instruction: str
    images: dict[str, list[Any] | NDArray] = Field(description="camera -> (T, H, W, 3) uint8")
    state: list[list[float]] | NDArray = Field(description="(T, state_dim)")
    action: list[list[float]] | NDArray = Field(description="(T, action_dim), as executed")
    success: bool
    policy_version: str | list[str] = Field(description="per episode or per step")
    intervention: list[bool] | NDArray | None = Field(
        default=None, description="(T,) True where a human produced the action"
    )
    reward: list[float] | NDArray | None = None
    timestamp: list[float] | NDArray | None = None
    instructions: list[str] | None = None
    subgoal: list[str | None] | None = None


class EpisodeOut(BaseModel):
    episode_id: str
    status: Literal["written", "exists"]
    round: int
    source: str
    path: str


class VersionOut(BaseModel):
    policy_version: str
    mode: str
    world_model_version: str | None
    chunk_size: int
    embodiments: dict[str, dict[str, Any]]
    tasks: dict[str, str]
    ramp_version: str
    robot: str
    limits: dict[str, Any]


class HealthOut(BaseModel):
    status: Literal["ok"]
    policy_version: str | None
