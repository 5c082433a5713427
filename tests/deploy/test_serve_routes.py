"""Every route against a real Ray Serve on loopback: round trips, openpi-client, auth, bad input.

The session's server (conftest.py) serves policy version 1 of the tiny preset; request loops are
bounded; every bad request must get a 4xx and leave the replica serving the next request.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack
import numpy as np
import pytest
import requests
from serve_helpers import ACTION_DIM, make_episode, make_obs, openpi_policy

from ramp.deploy.client import RampClient, RampHTTPError, StreamSession
from ramp.deploy.client.codec import dumps_json, packb, unpackb
from ramp.platform.episodes import EpisodeStore

CHUNK = 50
JSON_H = {"Content-Type": "application/json"}
MSGPACK_H = {"Content-Type": "application/msgpack"}


def post_act(server, body, headers=None, robot="robot-a"):
    return requests.post(
        server.url + "/v1/act",
        data=body,
        headers={**server.headers(robot), **(headers or {})},
        timeout=60,
    )


def assert_served(reply: dict, version: str) -> None:
    actions = np.asarray(reply["actions"], dtype=np.float32)
    assert actions.shape == (CHUNK, ACTION_DIM)
    assert np.isfinite(actions).all() and actions.min() >= -1.0 and actions.max() <= 1.0
    assert reply["policy_version"] == version
    timing = reply.get("timing") or reply["server_timing"]
    assert timing["infer_ms"] > 0 and timing["server_ms"] >= timing["infer_ms"]
    assert set(reply["clipped"]) == {"values", "dims"}


def good_request_succeeds(server) -> None:
    r = post_act(server, packb(make_obs(seed=99)), MSGPACK_H)
    assert r.status_code == 200, r.text
    assert_served(unpackb(r.content), server.versions[0])


# --------------------------------------------------------------------------- meta routes


def test_health_version_and_openapi(server):
    r = requests.get(server.url + "/healthz", timeout=10)
    assert r.status_code == 200 and r.json() == {
        "status": "ok",
        "policy_version": server.versions[0],
    }
    info = RampClient(server.url, server.tokens["robot-a"]).version()
    assert info["policy_version"] == server.versions[0] and info["robot"] == "robot-a"
    assert info["embodiments"]["arm"]["cameras"] == {"front": [64, 64, 3], "wrist": [32, 32, 3]}
    assert info["embodiments"]["arm"]["action_high"] == [1.0] * ACTION_DIM
    assert info["chunk_size"] == CHUNK and "pick-place" in info["tasks"]
    schema = requests.get(server.url + "/openapi.json", timeout=10).json()
    assert set(schema["paths"]) == {"/healthz", "/v1/version", "/v1/act", "/v1/episodes"}
    body = schema["paths"]["/v1/act"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "application/msgpack"}
    assert {"ObservationIn", "EpisodeIn", "ActionOut", "ErrorOut"} <= set(
        schema["components"]["schemas"]
    )


# --------------------------------------------------------------------------- acting


def test_act_round_trips_in_json_and_msgpack(server):
    obs = make_obs(request_id="r-1")
    r = post_act(server, dumps_json(obs), JSON_H)  # arrays as nested lists
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["x-ramp-policy-version"] == server.versions[0]
    assert float(r.headers["x-ramp-infer-ms"]) > 0
    reply = r.json()
    assert_served(reply, server.versions[0])
    assert reply["request_id"] == "r-1" and reply["embodiment"] == "arm"
    assert reply["mode"] == "efficient" and reply["timing"]["batch_size"] >= 1

    r = post_act(server, packb(obs), MSGPACK_H)
    assert r.headers["content-type"].startswith("application/msgpack")
    reply = unpackb(r.content)
    assert reply["actions"].dtype == np.float32
    assert_served(reply, server.versions[0])
    r = post_act(server, packb(obs), {**MSGPACK_H, "Accept": "application/json"})
    assert_served(r.json(), server.versions[0])

    for fmt in ("msgpack", "json"):
        chunk = RampClient(server.url, server.tokens["robot-b"], fmt=fmt).act(make_obs(seed=3))
        assert chunk.actions.shape == (CHUNK, ACTION_DIM)
        assert chunk.policy_version == server.versions[0] and chunk.timing["infer_ms"] > 0
    by_task = make_obs(task="pick-place")
    del by_task["instruction"]
    assert RampClient(server.url, server.tokens["robot-a"]).act(by_task).actions.shape[0] == CHUNK


def test_stream_sessions_in_msgpack_and_json(server):
    with StreamSession(server.ws_url, server.tokens["robot-a"]) as session:
        assert session.hello["type"] == "hello"
        assert session.hello["policy_version"] == server.versions[0]
        for i in range(3):
            chunk = session.act(make_obs(seed=i, request_id=i))
            assert chunk.actions.shape == (CHUNK, ACTION_DIM) and chunk.request_id == str(i)
        with pytest.raises(RampHTTPError) as e:  # an error frame; the session goes on
            session.act(make_obs(state=np.zeros(3, np.float32)))
        assert e.value.status == 422 and e.value.field == "state"
        assert session.act(make_obs()).policy_version == server.versions[0]
    client = RampClient(server.url, server.tokens["robot-b"])
    with client.stream(fmt="json") as session:
        assert session.hello["robot"] == "robot-b"
        assert session.act(make_obs()).actions.shape == (CHUNK, ACTION_DIM)


@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")
def test_the_real_openpi_client_works_by_changing_the_url(server):
    policy = openpi_policy(f"{server.ws_url}/v1/openpi", server.tokens["robot-a"])
    meta = policy.get_server_metadata()
    assert meta["policy_version"] == server.versions[0] and meta["action_horizon"] == CHUNK
    o = make_obs()
    frame = {
        "observation/image": o["images"]["front"],
        "observation/wrist_image": o["images"]["wrist"],
        "observation/state": o["state"],
        "prompt": "pick up the red block",
    }
    out = policy.infer(frame)
    assert out["actions"].shape == (CHUNK, ACTION_DIM) and out["actions"].dtype == np.float32
    assert out["server_timing"]["infer_ms"] > 0 and out["policy_version"] == server.versions[0]
    bad = {**frame, "observation/state": np.zeros(2, np.float32)}
    with pytest.raises(RuntimeError, match="observation/state"):
        policy.infer(bad)
    assert policy.infer(frame)["actions"].shape == (CHUNK, ACTION_DIM)  # same connection


# --------------------------------------------------------------------------- auth


def test_every_route_but_health_needs_a_robot_token(server):
    body = packb(make_obs())
    for method, path, data in [
        ("POST", "/v1/act", body),
        ("POST", "/v1/episodes", packb(make_episode("noauth-1"))),
        ("GET", "/v1/version", None),
    ]:
        for headers in (
            {},
            {"Authorization": "Bearer not-a-robot-token-at-all"},
            {"Authorization": f"Basic {server.tokens['robot-a']}"},
        ):
            r = requests.request(
                method, server.url + path, data=data, headers={**MSGPACK_H, **headers}, timeout=30
            )
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
            assert "Bearer" in r.headers["www-authenticate"]
    r = post_act(server, body, {**MSGPACK_H, **server.headers("robot-b", "Api-Key")})
    assert r.status_code == 200
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    for route in ("/v1/stream", "/v1/openpi"):
        with pytest.raises(InvalidStatus):
            connect(server.ws_url + route, open_timeout=10).close()
        with pytest.raises(InvalidStatus):
            connect(
                server.ws_url + route,
                open_timeout=10,
                additional_headers={"Authorization": "Api-Key wrong-token-0123456789"},
            ).close()


def test_a_robot_over_its_rate_limit_gets_429_and_others_do_not(server):
    client = RampClient(server.url, server.tokens["slowbot"])
    statuses = []
    for _ in range(4):  # burst 2, 0.2/s: the 3rd and 4th are refused
        try:
            client.version()
            statuses.append(200)
        except RampHTTPError as e:
            statuses.append(e.status)
            assert e.code == "rate_limited" and e.retry_after >= 1
            assert "slowbot" in e.message and "0.2 requests/s" in e.message
    assert statuses == [200, 200, 429, 429]
    r = requests.get(server.url + "/v1/version", headers=server.headers("slowbot"), timeout=10)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    good_request_succeeds(server)


# --------------------------------------------------------------------------- bad input


def _obs_with(**change):
    obs = make_obs()
    images = change.pop("images", None)
    if images:
        obs["images"] = {**obs["images"], **images}
    obs.update(change)
    return obs


def _missing_camera():
    obs = make_obs()
    del obs["images"]["wrist"]
    return obs


NAN_STATE = make_obs()["state"].copy()
NAN_STATE[4] = np.nan

BAD_REQUESTS = {
    "wrong image shape": (
        packb(_obs_with(images={"front": np.zeros((48, 64, 3), np.uint8)})),
        MSGPACK_H,
        422,
        "images.front",
    ),
    "wrong image dtype": (
        packb(_obs_with(images={"front": np.zeros((64, 64, 3), np.float32)})),
        MSGPACK_H,
        422,
        "images.front",
    ),
    "missing camera": (packb(_missing_camera()), MSGPACK_H, 422, "images.wrist"),
    "wrong state dimension": (
        packb(_obs_with(state=np.zeros(4, np.float32))),
        MSGPACK_H,
        422,
        "state",
    ),
    "NaN in msgpack": (packb(_obs_with(state=NAN_STATE)), MSGPACK_H, 422, "state[4]"),
    "NaN in JSON": (
        dumps_json(_obs_with())
        .replace(b'"state":[', b'"state":[NaN,', 1)
        .replace(b",NaN,", b",", 0),
        JSON_H,
        422,
        "state",
    ),
    "unknown task": (packb(_obs_with(task="fold-laundry")), MSGPACK_H, 422, "task"),
    "unknown embodiment": (packb(_obs_with(embodiment="aloha")), MSGPACK_H, 422, "embodiment"),
    "unknown field": (packb(_obs_with(prompt="x")), MSGPACK_H, 422, "prompt"),
    "truncated msgpack": (packb(make_obs())[:5000], MSGPACK_H, 400, "body"),
    "msgpack array with missing bytes": (None, MSGPACK_H, 400, "images.front"),
    "malformed JSON": (b'{"embodiment": "arm", "images": {', JSON_H, 400, "body"),
    "JSON that is not an object": (b"[1, 2, 3]", JSON_H, 422, "body"),
    "empty body": (b"", JSON_H, 400, "body"),
    "unsupported content type": (b"hello", {"Content-Type": "text/plain"}, 415, "content-type"),
    "oversized body": (b"\x00" * (600 * 1024), MSGPACK_H, 413, "body"),
}


def _truncated_array() -> bytes:
    raw = msgpack.unpackb(packb(make_obs()), raw=False)
    raw["images"]["front"][b"data"] = raw["images"]["front"][b"data"][:100]
    return msgpack.packb(raw, use_bin_type=True)


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_input_gets_a_4xx_naming_the_field_and_the_next_request_succeeds(server, case):
    body, headers, status, field = BAD_REQUESTS[case]
    if body is None:
        body = _truncated_array()
    r = post_act(server, body, headers)
    assert r.status_code == status, (case, r.status_code, r.text)
    err = r.json()["error"]
    assert err["status"] == status and err["field"].startswith(field), err
    assert err["message"]
    good_request_succeeds(server)


def test_a_chunked_oversized_body_is_refused_without_a_length(server):
    def chunks():
        for _ in range(20):
            yield b"\x00" * (64 * 1024)

    r = post_act(server, chunks(), MSGPACK_H)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    good_request_succeeds(server)


def test_oversized_and_garbage_websocket_frames(server):
    with StreamSession(server.ws_url, server.tokens["robot-a"]) as session:
        assert session._ws is not None
        session._ws.send(b"\xc1\x00garbage")
        err = unpackb(session._ws.recv(timeout=30))["error"]
        assert err["status"] == 400 and err["field"] == "body"
        session._ws.send("{not json")
        assert json.loads(session._ws.recv(timeout=30))["error"]["status"] == 400
        assert session.act(make_obs()).actions.shape == (CHUNK, ACTION_DIM)
        session._ws.send(b"\x00" * (600 * 1024))
        err = unpackb(session._ws.recv(timeout=30))["error"]
        assert err["status"] == 413
    good_request_succeeds(server)


# --------------------------------------------------------------------------- episodes


def test_episode_upload_lands_in_the_current_round_validated_and_idempotent(server):
    store = EpisodeStore(server.root, {"arm": server.cfg.embodiments["arm"]})
    store.set_current_round(2)
    client = RampClient(server.url, server.tokens["robot-a"])
    ep = make_episode("robot-a-20261125-0001", steps=5)
    out = client.upload_episode(ep)
    assert out["status"] == "written" and out["round"] == 2 and out["source"] == "robot-robot-a"
    entry = store.lookup(ep["episode_id"])
    assert entry is not None and entry.round == 2
    table = store.read_episode(ep["episode_id"], columns=["step", "intervention", "state"])
    assert table.num_rows == 5
    assert table.column("intervention").to_pylist() == ep["intervention"].tolist()
    store.set_current_round(3)  # a retry after a round boundary is not a duplicate
    assert client.upload_episode(ep)["status"] == "exists"
    r = requests.post(
        server.url + "/v1/episodes",
        data=dumps_json(ep, compact=True),
        headers={**server.headers("robot-a"), **JSON_H},
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["status"] == "exists"

    changed = {**ep, "success": False}
    with pytest.raises(RampHTTPError) as e:
        client.upload_episode(changed)
    assert e.value.status == 409 and e.value.field == "episode_id"
    bad = make_episode("robot-a-20261125-0002", steps=5)
    bad["state"][3, 2] = np.nan
    with pytest.raises(RampHTTPError) as e:
        client.upload_episode(bad)
    assert e.value.status == 422 and e.value.field == "state" and "step 3" in e.value.message
    bad = make_episode("robot-a-20261125-0003", steps=5)
    bad["images"]["wrist"] = bad["images"]["wrist"][:, :16]
    with pytest.raises(RampHTTPError) as e:
        client.upload_episode(bad)
    assert e.value.status == 422 and e.value.field == "image.wrist"
    assert store.lookup("robot-a-20261125-0002") is None
    store.set_current_round(0)
    good_request_succeeds(server)


# --------------------------------------------------------------------------- serving loop


def test_concurrent_robots_are_batched_and_io_never_waits_for_inference(server):
    stop = threading.Event()
    sizes: list[int] = []

    def robot(i: int) -> int:
        client = RampClient(server.url, server.tokens["robot-a"])
        n = 0
        while not stop.is_set() and n < 40:
            sizes.append(client.act(make_obs(seed=i)).timing["batch_size"])
            n += 1
        return n

    health: list[float] = []
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(robot, i) for i in range(8)]
        time.sleep(1.0)
        for _ in range(20):
            t0 = time.perf_counter()
            assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
            health.append(time.perf_counter() - t0)
            time.sleep(0.05)
        stop.set()
        assert all(f.result(timeout=120) > 0 for f in futures)
    assert max(sizes) > 1, "concurrent requests were never batched"
    # an inference takes tens of ms per batch here; the I/O path answers well within one
    assert float(np.median(health)) < 0.05, health


def test_tokens_never_reach_the_logs(server):
    """Last in this file: every token above went over the wire; none may be in any Ray log."""
    bogus = "bogus-token-that-must-not-be-logged-42"
    requests.get(
        server.url + "/v1/version", headers={"Authorization": f"Bearer {bogus}"}, timeout=10
    )
    time.sleep(1.0)
    secrets_ = [*server.tokens.values(), bogus]
    logs = Path(server.temp_dir) / "logs"
    scanned = 0
    for path in logs.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            scanned += 1
            for token in secrets_:
                assert token.encode() not in data, f"a token appears in {path}"
    assert scanned > 5
