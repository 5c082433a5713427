"""The robot-side client of ramp's serving API (docs/api.md): numpy, msgpack, websockets only.

It never imports torch or ray, so it runs on a robot's small computer; the folder is
self-contained (relative imports only) and may be copied into a robot's code base as it is.

    from ramp.deploy.client import RampClient, ChunkBroker
    client = RampClient("http://127.0.0.1:8000", token)
    chunk = client.act({"embodiment": "arm", "images": {...}, "state": q, "instruction": "..."})
"""

from .broker import ChunkBroker
from .codec import CodecError
from .errors import RampError, RampHTTPError, RampUnavailable
from .recorder import EpisodeRecorder, EpisodeUploader, new_episode_id
from .rest import ActionChunk, RampClient
from .stream import StreamSession

__all__ = [
    "ActionChunk",
    "ChunkBroker",
    "CodecError",
    "EpisodeRecorder",
    "EpisodeUploader",
    "RampClient",
    "RampError",
    "RampHTTPError",
    "RampUnavailable",
    "StreamSession",
    "new_episode_id",
]
