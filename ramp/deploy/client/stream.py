"""``StreamSession``: a persistent WebSocket session on /v1/stream (lowest latency).

The server greets with a hello frame (policy version, embodiments); then each observation frame
gets one answer frame of the same kind (binary msgpack, or text JSON with ``fmt="json"``). A bad
observation gets an error frame and the session goes on; a dropped connection is reopened once.
"""

from __future__ import annotations

from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from .codec import dumps_json, loads_json, packb, unpackb
from .errors import RampHTTPError, RampUnavailable
from .rest import ActionChunk


class StreamSession:
    def __init__(self, url: str, token: str | None, *, fmt: str = "msgpack", timeout: float = 30.0):
        self.url = url.rstrip("/") + "/v1/stream" + ("?format=json" if fmt == "json" else "")
        self.token = token
        self.fmt = fmt
        self.timeout = timeout
        self.hello: dict[str, Any] = {}
        self._ws: ClientConnection | None = None

    def connect(self) -> StreamSession:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        try:
            # entered by hand: websockets wants connect() used as a context manager
            self._ws = connect(
                self.url,
                additional_headers=headers,
                max_size=None,
                compression=None,
                open_timeout=self.timeout,
            ).__enter__()
        except InvalidHandshake as e:
            raise RampHTTPError(403, "unauthorized", f"handshake refused: {e}") from e
        except OSError as e:
            raise RampUnavailable(f"{self.url}: {e}") from e
        self.hello = self._decode(self._ws.recv(timeout=self.timeout))
        return self

    def _decode(self, frame: bytes | str) -> Any:
        return unpackb(frame) if isinstance(frame, bytes) else loads_json(frame)

    def send(self, obs: dict[str, Any]) -> None:
        """Send an observation without waiting (pair with ``recv``)."""
        if self._ws is None:
            self.connect()
        assert self._ws is not None
        if self.fmt == "msgpack":
            self._ws.send(packb(obs))
        else:
            self._ws.send(dumps_json(obs, compact=True).decode())

    def recv(self) -> ActionChunk:
        assert self._ws is not None, "send() first"
        reply = self._decode(self._ws.recv(timeout=self.timeout))
        if "error" in reply:
            raise RampHTTPError.from_error(reply["error"].get("status", 400), reply)
        return ActionChunk.from_reply(reply)

    def act(self, obs: dict[str, Any]) -> ActionChunk:
        for attempt in (0, 1):
            try:
                self.send(obs)
                return self.recv()
            except (ConnectionClosed, OSError) as e:
                self._ws = None
                if attempt:
                    raise RampUnavailable(f"{self.url}: {e}") from e
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._ws is not None:
            self._ws.__exit__(None, None, None)
            self._ws = None

    def __enter__(self) -> StreamSession:
        return self.connect() if self._ws is None else self

    def __exit__(self, *exc: Any) -> None:
        self.close()
