"""Episodes: the Arrow schema, the store (local or S3), label sidecars and training samples."""

from ramp.platform.episodes.episode import Episode, EpisodeValidationError, episode_to_table
from ramp.platform.episodes.fs import StoreUnavailableError
from ramp.platform.episodes.index import IndexEntry
from ramp.platform.episodes.labels import LabelError
from ramp.platform.episodes.schema import SCHEMA_VERSION, EpisodeMeta, SchemaVersionError
from ramp.platform.episodes.store import (
    EpisodeConflictError,
    EpisodeNotFoundError,
    EpisodeStore,
    EpisodeUnreadableError,
    WriteResult,
)

__all__ = [
    "SCHEMA_VERSION",
    "Episode",
    "EpisodeConflictError",
    "EpisodeMeta",
    "EpisodeNotFoundError",
    "EpisodeStore",
    "EpisodeUnreadableError",
    "EpisodeValidationError",
    "IndexEntry",
    "LabelError",
    "SchemaVersionError",
    "StoreUnavailableError",
    "WriteResult",
    "episode_to_table",
]
