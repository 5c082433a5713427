"""``RampClient``: the HTTP routes (act, version, health, episode upload), stdlib http.client.

One keep-alive connection per thread; a request that finds its connection closed by the server
is sent again once on a fresh one (acting and uploading are idempotent).
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .codec import dumps_json, loads_json, packb, unpackb
from .errors import RampHTTPError, RampUnavailable

MSGPACK = "application/msgpack"
JSON = "application/json"


@dataclass
class ActionChunk:
    """One served action chunk (actions in the embodiment's units, clipped to its bounds)."""

    actions: np.ndarray  # (chunk_size, action_dim) float32
    policy_version: str
    embodiment: str = ""
    mode: str = ""
    clipped: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None

    @classmethod
    def from_reply(cls, reply: dict[str, Any]) -> ActionChunk:
        timing = dict(reply.get("timing") or reply.get("server_timing") or {})
        return cls(
            actions=np.asarray(reply["actions"], dtype=np.float32),
            policy_version=reply["policy_version"],
            embodiment=reply.get("embodiment", ""),
            mode=reply.get("mode", ""),
            clipped=dict(reply.get("clipped") or {}),
            timing=timing,
            request_id=reply.get("request_id"),
        )


class RampClient:
    """``RampClient("http://127.0.0.1:8000", token).act(obs)`` -> ActionChunk."""

    def __init__(self, url: str, token: str | None, *, fmt: str = "msgpack", timeout: float = 30.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http(s)://host[:port], got {url!r}")
        self.url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self._base = parts.path.rstrip("/")
        self.token = token
        self.fmt = fmt
        self.timeout = timeout
        self._local = threading.local()

    # ------------------------------------------------------------------ transport

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = None,
        accept: str = f"{MSGPACK}, {JSON}",
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if content_type:
            headers["Content-Type"] = content_type
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request(method, self._base + path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (http.client.HTTPException, OSError) as e:
                self._drop()
                if attempt:
                    raise RampUnavailable(f"{method} {self.url}{path}: {e}") from e
        raise AssertionError("unreachable")  # pragma: no cover

    def _call(self, method: str, path: str, payload: Any = None, fmt: str | None = None) -> Any:
        fmt = fmt or self.fmt
        body, ctype = None, None
        if payload is not None:
            body = packb(payload) if fmt == "msgpack" else dumps_json(payload, compact=True)
            ctype = MSGPACK if fmt == "msgpack" else JSON
        accept = MSGPACK if fmt == "msgpack" else JSON
        status, headers, data = self.request(method, path, body, ctype, accept)
        if status >= 400:
            retry = headers.get("retry-after")
            raise RampHTTPError.from_error(status, data, float(retry) if retry else None)
        if headers.get("content-type", "").startswith(MSGPACK):
            return unpackb(data)
        return loads_json(data)

    # ------------------------------------------------------------------ routes

    def act(self, obs: dict[str, Any]) -> ActionChunk:
        """One observation {embodiment, images, state, instruction|task} -> an action chunk."""
        return ActionChunk.from_reply(self._call("POST", "/v1/act", obs))

    def version(self) -> dict[str, Any]:
        """The live policy version, its embodiments (cameras, dims, bounds), tasks and limits."""
        return self._call("GET", "/v1/version")

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/healthz")

    def upload_episode(self, episode: dict[str, Any]) -> dict[str, Any]:
        """Store a finished episode (see EpisodeRecorder); idempotent by episode_id."""
        return self._call("POST", "/v1/episodes", episode, fmt="msgpack")

    def stream(self, **kwargs: Any) -> Any:
        """A WebSocket session on /v1/stream (``StreamSession``)."""
        from .stream import StreamSession

        scheme = "wss" if self._https else "ws"
        netloc = self._host if self._port is None else f"{self._host}:{self._port}"
        return StreamSession(f"{scheme}://{netloc}{self._base}", self.token, **kwargs)

    def close(self) -> None:
        self._drop()
