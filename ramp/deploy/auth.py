"""Robot tokens and per-robot rate limits: pure logic, unit-tested without Ray.

Tokens are resolved once, where ``ramp serve`` runs (config, then ``$RAMP_ROBOT_TOKENS``), and
only their SHA-256 digests travel to the Serve replicas; nothing here ever formats a token into
a message or a log line.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ramp.deploy.settings import RateLimitConfig, ServeConfig, check_robot_token

SCHEMES = ("bearer", "api-key")
AUTH_HINT = "send 'Authorization: Bearer <token>' (or 'Authorization: Api-Key <token>')"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_tokens_env(text: str, name: str) -> dict[str, str]:
    """``robot-a=TOKEN,robot-b=TOKEN`` (commas or newlines) -> {robot: token}."""
    out: dict[str, str] = {}
    for i, item in enumerate(x.strip() for x in text.replace("\n", ",").split(",")):
        if not item:
            continue
        robot, sep, token = item.partition("=")
        if not sep:
            raise ValueError(f"${name}: entry {i + 1} is not ROBOT=TOKEN")
        robot, token = robot.strip(), token.strip()
        check_robot_token(robot, token, f"${name}")
        if robot in out:
            raise ValueError(f"${name}: robot {robot!r} appears twice")
        out[robot] = token
    return out


def resolve_tokens(cfg: ServeConfig, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """{token digest: robot} from the config and the environment (the environment wins)."""
    env = os.environ if environ is None else environ
    tokens = {robot: secret.get_secret_value() for robot, secret in cfg.tokens.items()}
    tokens.update(parse_tokens_env(env.get(cfg.tokens_env, ""), cfg.tokens_env))
    out: dict[str, str] = {}
    for robot, token in tokens.items():
        d = digest(token)
        if d in out:
            raise ValueError(f"robots {out[d]!r} and {robot!r} share a token; give each its own")
        out[d] = robot
    if cfg.auth == "tokens" and not out:
        raise ValueError(
            "no robot tokens: set serve.tokens in the config or "
            f"{cfg.tokens_env}='robot-a=TOKEN,robot-b=TOKEN' in the environment (or, on a "
            "loopback host only, serve.auth: none)"
        )
    return out


def token_from_header(value: str | None) -> str | None:
    """The token of ``Bearer <t>`` or ``Api-Key <t>`` (scheme case-insensitive), else None."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() not in SCHEMES or not token:
        return None
    return token


@dataclass
class Authenticator:
    """Maps an Authorization header to a robot name (None: refuse)."""

    digests: dict[str, str]  # token digest -> robot
    open_access: bool = False  # serve.auth: none

    def robot(self, header: str | None) -> str | None:
        token = token_from_header(header)
        if token is None:
            return "anonymous" if self.open_access else None
        robot = self.digests.get(digest(token))
        if robot is None and self.open_access:
            return "anonymous"
        return robot


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float, cost: float = 1.0) -> float:
        """0.0 when allowed (and taken); else seconds until ``cost`` tokens are available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= cost - 1e-9:  # float refill steps must not deny an exact refill
            self.tokens = max(0.0, self.tokens - cost)
            return 0.0
        return (cost - self.tokens) / self.rate


@dataclass
class RateLimiter:
    """One token bucket per robot, held in this process (one per serving replica)."""

    default: RateLimitConfig
    overrides: dict[str, RateLimitConfig] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def limits(self, robot: str) -> RateLimitConfig:
        return self.overrides.get(robot, self.default)

    def check(self, robot: str) -> float:
        """0.0 when the request may go on; else the seconds to wait (answer 429)."""
        now = self.clock()
        bucket = self._buckets.get(robot)
        if bucket is None:
            lim = self.limits(robot)
            bucket = TokenBucket(lim.requests_per_s, float(lim.burst), float(lim.burst), now)
            self._buckets[robot] = bucket
        return bucket.take(now)

    def message(self, robot: str, wait_s: float) -> str:
        lim = self.limits(robot)
        return (
            f"robot {robot!r} is over its rate limit ({lim.requests_per_s:g} requests/s, burst "
            f"{lim.burst}); retry after {wait_s:.3f} s"
        )


def retry_after_header(wait_s: float) -> str:
    """HTTP Retry-After is whole seconds; round up so a client that obeys it succeeds."""
    return str(max(1, math.ceil(wait_s)))
