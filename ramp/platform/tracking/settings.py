"""Section ``tracking``: where MLflow lives."""

from __future__ import annotations

from pydantic import Field

from ramp.platform.base import StrictModel


class TrackingConfig(StrictModel):
    """Section ``tracking``."""

    enabled: bool = Field(default=True, description="False: no MLflow at all")
    uri: str | None = Field(
        default=None,
        description="MLflow tracking URI (http://host:port for a server); None = "
        "sqlite:///<store root>/mlflow.db for a local store (an S3 store needs a server)",
    )
    artifact_location: str | None = Field(
        default=None,
        description="where a new experiment keeps artifacts; None = <store root>/mlflow-artifacts "
        "for a local store, the server's default otherwise",
    )
    experiment: str | None = Field(
        default=None, description="experiment name; None = the config's name"
    )
    registry: bool = Field(
        default=True,
        description="register ramp-policy / ramp-world-model versions with aliases "
        "candidate and production",
    )
    policy_model: str = Field(default="ramp-policy", description="registered model name")
    world_model_model: str = Field(default="ramp-world-model", description="registered model name")
