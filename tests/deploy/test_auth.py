"""Robot tokens, the token bucket and the serve settings, without Ray."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ramp.deploy.auth import (
    Authenticator,
    RateLimiter,
    digest,
    parse_tokens_env,
    resolve_tokens,
    retry_after_header,
    token_from_header,
)
from ramp.deploy.settings import RateLimitConfig, ServeConfig
from ramp.platform.config import ConfigError, dump_config, load_config

TOKEN_A = "a" * 20 + "-secret-A"
TOKEN_B = "b" * 20 + "-secret-B"


def test_tokens_from_env_and_config_env_wins():
    cfg = ServeConfig(tokens={"robot-a": TOKEN_A})
    env = {"RAMP_ROBOT_TOKENS": f"robot-a={TOKEN_B}, robot-c = {TOKEN_A}x\n"}
    got = resolve_tokens(cfg, env)
    assert got == {digest(TOKEN_B): "robot-a", digest(TOKEN_A + "x"): "robot-c"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("robot-a", "not ROBOT=TOKEN"),
        ("robot-a=short", "at least 16"),
        (f"bad name={TOKEN_A}", "must match"),
        (f"r={TOKEN_A},r={TOKEN_B}", "twice"),
    ],
)
def test_bad_token_env_entries_are_refused_without_echoing_tokens(text, words):
    with pytest.raises(ValueError) as e:
        parse_tokens_env(text, "RAMP_ROBOT_TOKENS")
    assert words in str(e.value)
    assert (
        TOKEN_A not in str(e.value)
        and TOKEN_B not in str(e.value)
        and "short" not in str(e.value).replace("at least", "")
    )


def test_tokens_are_required_unless_auth_none_on_loopback():
    with pytest.raises(ValueError, match="RAMP_ROBOT_TOKENS"):
        resolve_tokens(ServeConfig(), {})
    assert resolve_tokens(ServeConfig(auth="none"), {}) == {}
    with pytest.raises(ValidationError, match="loopback"):
        ServeConfig(auth="none", host="0.0.0.0")
    with pytest.raises(ValueError, match="share a token"):
        resolve_tokens(ServeConfig(tokens={"x": TOKEN_A}), {"RAMP_ROBOT_TOKENS": f"y={TOKEN_A}"})
    with pytest.raises(ValidationError, match="share a token"):
        ServeConfig(tokens={"x": TOKEN_A, "y": TOKEN_A})


def test_config_section_hides_tokens_and_suggests_keys():
    cfg = load_config(None, [f"serve.tokens.robot-a={TOKEN_A}"])
    assert cfg.serve.tokens["robot-a"].get_secret_value() == TOKEN_A
    assert TOKEN_A not in dump_config(cfg) and TOKEN_A not in repr(cfg)
    with pytest.raises(ConfigError, match="did you mean 'max_batch_size'"):
        load_config(None, ["serve.max_batchsize=4"])
    with pytest.raises(ConfigError) as e:
        load_config(None, ["serve.tokens.robot-a=tooshort"])
    assert "at least 16" in str(e.value)


def test_authorization_headers_bearer_and_api_key():
    assert token_from_header(f"Bearer {TOKEN_A}") == TOKEN_A
    assert token_from_header(f"bearer   {TOKEN_A} ") == TOKEN_A
    assert token_from_header(f"Api-Key {TOKEN_A}") == TOKEN_A
    for bad in (None, "", TOKEN_A, f"Basic {TOKEN_A}", "Bearer "):
        assert token_from_header(bad) is None
    auth = Authenticator({digest(TOKEN_A): "robot-a"})
    assert auth.robot(f"Api-Key {TOKEN_A}") == "robot-a"
    assert auth.robot(f"Bearer {TOKEN_B}") is None and auth.robot(None) is None
    assert Authenticator({}, open_access=True).robot(None) == "anonymous"


def test_token_bucket_burst_refill_and_per_robot_limits():
    now = [100.0]
    limiter = RateLimiter(
        RateLimitConfig(requests_per_s=10, burst=3),
        {"slow": RateLimitConfig(requests_per_s=0.5, burst=1)},
        clock=lambda: now[0],
    )
    assert [limiter.check("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.check("a")
    assert wait == pytest.approx(0.1)
    assert limiter.check("b") == 0.0  # buckets are per robot
    now[0] += 0.1
    assert limiter.check("a") == 0.0
    assert limiter.check("a") > 0
    assert limiter.check("slow") == 0.0
    assert limiter.check("slow") == pytest.approx(2.0)
    assert "0.5 requests/s, burst 1" in limiter.message("slow", 2.0)
    assert retry_after_header(0.1) == "1" and retry_after_header(2.01) == "3"
