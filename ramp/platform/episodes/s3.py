"""S3 roots: build the file system for `s3://bucket/prefix` from config and the environment.

Two clients sit behind the same pyarrow FileSystem interface, so the store's code is identical for
both: pyarrow's native S3 client (default; C++, fastest) and s3fs (fsspec), which many data tools
already configure. Both retry transient errors with backoff and time out, so a dead endpoint is an
error naming it, never a hang.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow.fs as pafs

from ramp.platform.config import S3Config
from ramp.platform.episodes.fs import StoreUnavailableError

# Ceph RGW 16 (and other older S3 servers) answer HTTP 411 to the checksum trailers that new AWS
# SDKs send by default, which the client then retries until it looks like a hang; and with no EC2
# metadata service on loopback the SDK's credential/region probing costs seconds per client.
_SDK_ENV = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class S3Settings:
    """S3Config with the environment's defaults applied."""

    endpoint_url: str | None
    access_key_id: str | None
    secret_access_key: str | None
    region: str
    client: str
    connect_timeout_s: float
    request_timeout_s: float
    max_attempts: int
    create_bucket: bool

    @property
    def where(self) -> str:
        return self.endpoint_url or f"AWS S3 ({self.region})"


def resolve(cfg: S3Config | None) -> S3Settings:
    cfg = cfg or S3Config()
    secret = cfg.secret_access_key.get_secret_value() if cfg.secret_access_key else None
    return S3Settings(
        endpoint_url=cfg.endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL"),
        access_key_id=cfg.access_key_id or os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_access_key=secret or os.environ.get("AWS_SECRET_ACCESS_KEY"),
        region=cfg.region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1",
        client=cfg.client,
        connect_timeout_s=cfg.connect_timeout_s,
        request_timeout_s=cfg.request_timeout_s,
        max_attempts=cfg.max_attempts,
        create_bucket=cfg.create_bucket,
    )


def split_s3_uri(root: str) -> tuple[str, str]:
    """'s3://bucket/a/b/' -> ('bucket', 'a/b')."""
    parsed = urlparse(root)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{root!r} is not an s3://bucket[/prefix] URI")
    return parsed.netloc, parsed.path.strip("/")


def s3_filesystem(settings: S3Settings) -> pafs.FileSystem:
    """A pyarrow FileSystem for the settings (pyarrow's S3 client, or s3fs wrapped)."""
    for key, value in _SDK_ENV.items():
        os.environ.setdefault(key, value)
    endpoint = urlparse(settings.endpoint_url) if settings.endpoint_url else None
    if settings.client == "s3fs":
        import s3fs

        client_kwargs = {"endpoint_url": settings.endpoint_url} if settings.endpoint_url else {}
        fs = s3fs.S3FileSystem(
            key=settings.access_key_id,
            secret=settings.secret_access_key,
            client_kwargs=client_kwargs,
            config_kwargs={
                "connect_timeout": settings.connect_timeout_s,
                "read_timeout": settings.request_timeout_s,
                "retries": {"max_attempts": settings.max_attempts, "mode": "standard"},
            },
            # s3fs's region is taken from client_kwargs; setting region_name breaks bucket
            # creation on RGW (STACK.md), so it is left to the endpoint.
            skip_instance_cache=True,
        )
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    return pafs.S3FileSystem(
        access_key=settings.access_key_id,
        secret_key=settings.secret_access_key,
        region=settings.region,
        endpoint_override=endpoint.netloc if endpoint else None,
        scheme=endpoint.scheme if endpoint else "https",
        connect_timeout=settings.connect_timeout_s,
        request_timeout=settings.request_timeout_s,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=settings.max_attempts),
        allow_bucket_creation=settings.create_bucket,
        allow_bucket_deletion=False,
    )


def ensure_bucket(fs: pafs.FileSystem, bucket: str, settings: S3Settings) -> None:
    """Fail early, naming the endpoint, if the bucket is missing or the server unreachable."""
    try:
        info = fs.get_file_info(bucket)
    except OSError as e:
        raise StoreUnavailableError(f"S3 endpoint {settings.where}: {e}") from None
    if info.type == pafs.FileType.NotFound:
        if not settings.create_bucket:
            raise StoreUnavailableError(
                f"bucket {bucket!r} does not exist at {settings.where}; create it, or set "
                "store.s3.create_bucket: true"
            )
        try:
            fs.create_dir(bucket)
        except OSError as e:
            raise StoreUnavailableError(
                f"S3 endpoint {settings.where}: cannot create bucket {bucket!r}: {e}"
            ) from None
