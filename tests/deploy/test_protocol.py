"""The wire protocol without Ray: codecs, observation validation, openpi mapping, actions."""

from __future__ import annotations

import json

import msgpack
import numpy as np
import pytest
from serve_helpers import CAMERAS, STATE_DIM, TASKS, arm_spec, make_episode, make_obs

from ramp.deploy import protocol as P
from ramp.deploy.client.codec import (
    CodecError,
    dumps_json,
    jsonable,
    loads_json,
    ndarray_json,
    packb,
    unpackb,
)
from ramp.deploy.settings import OpenpiConfig

SPECS = {"arm": arm_spec()}


def parse(obj, **kw):
    return P.parse_observation(obj, SPECS, TASKS, **kw)


def refused(obj, status=422, **kw) -> P.ProtocolError:
    with pytest.raises(P.ProtocolError) as e:
        parse(obj, **kw)
    assert e.value.status == status, e.value
    return e.value


# --------------------------------------------------------------------------- codecs


def test_msgpack_round_trip_keeps_dtypes_and_shapes():
    obs = make_obs()
    back = unpackb(packb(obs))
    for cam in CAMERAS:
        assert back["images"][cam].dtype == np.uint8
        assert np.array_equal(back["images"][cam], obs["images"][cam])
    assert back["state"].dtype == np.float32 and np.array_equal(back["state"], obs["state"])
    assert unpackb(packb({"x": np.float32(1.5)}))["x"] == np.float32(1.5)


def test_msgpack_is_openpi_compatible_both_ways():
    from openpi_client import msgpack_numpy

    obs = {"observation/image": np.ones((4, 4, 3), np.uint8), "prompt": "hi", "n": np.int64(3)}
    ours = unpackb(msgpack_numpy.packb(obs))
    assert np.array_equal(ours["observation/image"], obs["observation/image"])
    assert ours["n"] == 3 and ours["prompt"] == "hi"
    theirs = msgpack_numpy.unpackb(packb({"actions": np.zeros((50, 7), np.float32)}))
    assert theirs["actions"].shape == (50, 7) and theirs["actions"].dtype == np.float32


def test_truncated_and_malformed_msgpack_name_the_body():
    data = packb(make_obs())
    for bad in (data[: len(data) // 2], data + b"\x00", b"\xc1"):
        with pytest.raises(CodecError) as e:
            unpackb(bad)
        assert e.value.field == "body"
    with pytest.raises(CodecError, match=r"integer|str|bytes|key"):
        unpackb(msgpack.packb({1: 2}))


def test_array_maps_are_checked_against_their_bytes_and_dtype():
    good = {"state": np.zeros(4, np.float32)}
    raw = msgpack.unpackb(packb(good), raw=False)
    raw["state"][b"data"] = raw["state"][b"data"][:-1]
    with pytest.raises(CodecError) as e:
        unpackb(msgpack.packb(raw, use_bin_type=True))
    assert e.value.field == "state" and "needs 16 bytes" in e.value.message
    obj = {
        "images": {"front": {b"__ndarray__": True, b"data": b"x", b"dtype": "|O", b"shape": [1]}}
    }
    with pytest.raises(CodecError) as e:
        unpackb(msgpack.packb(obj, use_bin_type=True))
    assert e.value.field == "images.front" and "not allowed" in e.value.message
    with pytest.raises(TypeError):
        packb({"x": np.array(["a"], dtype=object)})
    # dtype strings numpy cannot parse, whatever it raises for them (schemathesis found that
    # "i4,(2" raises SyntaxError inside numpy, which used to become a 500)
    for bad in ("i4,(2", "(", "no-such-type", 7):
        obj = {"state": {b"__ndarray__": True, b"data": b"\0" * 4, b"dtype": bad, b"shape": [1]}}
        with pytest.raises(CodecError) as e:
            unpackb(msgpack.packb(obj, use_bin_type=True))
        assert e.value.field == "state" and "dtype" in e.value.message
        as_json = {"state": {"__ndarray__": True, "dtype": bad, "shape": [1], "data": "AAAAAA=="}}
        with pytest.raises(CodecError):
            loads_json(json.dumps(as_json))


def test_json_arrays_as_lists_or_base64():
    img = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    back = loads_json(dumps_json({"img": img}, compact=True))
    assert back["img"].dtype == np.uint8 and np.array_equal(back["img"], img)
    assert loads_json(json.dumps({"img": ndarray_json(img)}))["img"].shape == (2, 2, 3)
    assert jsonable({"a": np.float32(2.0), "b": np.zeros(2)}) == {"a": 2.0, "b": [0.0, 0.0]}
    with pytest.raises(CodecError, match="line 1 column"):
        loads_json(b'{"embodiment": "arm",')
    with pytest.raises(CodecError, match="base64"):
        loads_json(
            json.dumps({"x": {"__ndarray__": True, "dtype": "|u1", "shape": [1], "data": "!"}})
        )


def test_formats_from_headers():
    assert P.request_format(None) == P.JSON
    assert P.request_format("application/json; charset=utf-8") == P.JSON
    assert P.request_format("application/x-msgpack") == P.MSGPACK
    with pytest.raises(P.ProtocolError) as e:
        P.request_format("text/plain")
    assert e.value.status == 415 and e.value.field == "content-type"
    assert P.response_format(None, P.MSGPACK) == P.MSGPACK
    assert P.response_format("application/json", P.MSGPACK) == P.JSON
    assert P.response_format("application/msgpack, application/json", P.JSON) == P.MSGPACK


# --------------------------------------------------------------------------- observations


def test_a_good_observation_passes_json_and_msgpack():
    obs = parse(make_obs(request_id=7))
    assert obs.embodiment == "arm" and obs.request_id == "7"
    assert obs.state.dtype == np.float32 and obs.images["front"].shape == (64, 64, 3)
    as_json = loads_json(dumps_json(make_obs()))  # images as nested int lists
    assert parse(as_json).images["wrist"].dtype == np.uint8
    by_task = parse(make_obs(instruction=None, task="pick-place") | {"instruction": None})
    assert by_task.instruction == TASKS["pick-place"]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"images": {"front": np.zeros((32, 64, 3), np.uint8)}}, "images.front", "(64, 64, 3)"),
        ({"images": {"front": np.zeros((64, 64, 3), np.float32)}}, "images.front", "uint8"),
        ({"images": {"front": np.zeros((64, 64), np.uint8)}}, "images.front", "shape"),
        ({"images": {"front": [[[300, 0, 0]]]}}, "images.front", "shape"),
        ({"state": np.zeros(STATE_DIM + 1, np.float32)}, "state", f"{STATE_DIM} values"),
        ({"state": [1.0, 2.0]}, "state", f"{STATE_DIM} values"),
        ({"state": "nope"}, "state", "must be an array"),
        ({"embodiment": "armm"}, "embodiment", "did you mean 'arm'"),
        ({"task": "pick-plcae"}, "task", "did you mean 'pick-place'"),
        ({"instruction": 5}, "instruction", "string"),
        ({"instruction": "x" * (P.MAX_INSTRUCTION_CHARS + 1)}, "instruction", "longer"),
        ({"stat": [1.0]}, "stat", "did you mean 'state'"),
        ({"request_id": [1]}, "request_id", "string or an integer"),
    ],
)
def test_each_bad_field_is_named(change, field, words):
    obs = make_obs()
    for key, value in change.items():
        if key == "images":
            obs["images"] = {**obs["images"], **value}
        else:
            obs[key] = value
    err = refused(obs)
    assert err.field == field, err
    assert words in err.message, err.message


def test_missing_and_extra_cameras_missing_state_nan():
    obs = make_obs()
    del obs["images"]["wrist"]
    assert refused(obs).field == "images.wrist"
    obs = make_obs()
    obs["images"]["side"] = obs["images"]["wrist"]
    err = refused(obs)
    assert err.field == "images.side" and "not declared" in err.message
    obs = make_obs()
    del obs["state"]
    assert refused(obs).field == "state"
    state = make_obs()["state"]
    state[3] = np.nan
    err = refused(make_obs(state=state))
    assert err.field == "state[3]" and "finite" in err.message
    err = refused(loads_json(b'{"embodiment": "arm", "images": {}, "state": [NaN]}'))
    assert err.field == "images.front"  # cameras are checked first; each message names one field
    assert refused(make_obs(instruction=None)).field == "instruction"
    assert refused([1, 2]).field == "body"
    assert refused({"images": {}}).field == "embodiment"


# --------------------------------------------------------------------------- openpi


def openpi(obj, **cfg):
    return P.openpi_observation(obj, OpenpiConfig(**cfg), SPECS, TASKS)


def test_openpi_libero_style_keys_map_onto_cameras():
    o = make_obs()
    obs = openpi(
        {
            "observation/image": o["images"]["front"],
            "observation/wrist_image": o["images"]["wrist"],
            "observation/state": o["state"],
            "prompt": "pick it up",
        }
    )
    assert obs.embodiment == "arm" and obs.instruction == "pick it up"
    assert np.array_equal(obs.images["wrist"], o["images"]["wrist"])


def test_openpi_nested_dicts_chw_images_and_split_state():
    o = make_obs()
    obs = openpi(
        {
            "images": {
                "front": np.moveaxis(o["images"]["front"], -1, 0),
                "wrist": o["images"]["wrist"],
            },
            "joints": o["state"][:7],
            "gripper": o["state"][7:],
            "prompt": "x",
        },
        state_keys=["joints", "gripper"],
    )
    assert np.array_equal(obs.images["front"], o["images"]["front"])
    assert np.array_equal(obs.state, o["state"])


def test_openpi_errors_name_the_openpi_keys():
    o = make_obs()
    frame = {
        "observation/image": o["images"]["front"].astype(np.float32),
        "observation/wrist_image": o["images"]["wrist"],
        "observation/state": o["state"],
        "prompt": "x",
    }
    with pytest.raises(P.ProtocolError) as e:
        openpi(frame)
    assert e.value.field == "observation/image" and "uint8" in e.value.message
    del frame["observation/wrist_image"]
    with pytest.raises(P.ProtocolError) as e:
        openpi(frame)
    assert e.value.field == "observation/wrist" and "observation/wrist_image" in e.value.message
    mapping = {"cam_high": "front", "cam_wrist": "wrist"}
    with pytest.raises(P.ProtocolError) as e:
        openpi(
            {"images": {"cam_high": o["images"]["front"]}, "state": o["state"]},
            cameras={f"images/{k}": v for k, v in mapping.items()},
        )
    assert e.value.field == "images/cam_wrist" and "missing" in e.value.message
    with pytest.raises(P.ProtocolError) as e:
        openpi(
            {
                "observation/image": o["images"]["front"],
                "observation/wrist_image": o["images"]["wrist"],
                "observation/state": o["state"][:3],
            }
        )
    assert e.value.field == "observation/state"


# --------------------------------------------------------------------------- actions, specs


def test_actions_are_clipped_and_reported_and_nan_never_leaves():
    spec = arm_spec()
    acts = np.zeros((50, 7), np.float32)
    acts[0, 2] = 3.0
    acts[4, 5] = -2.0
    out, report = P.finalize_actions(acts, spec)
    assert out.max() <= 1.0 and out.min() >= -1.0
    assert report == {"values": 2, "dims": ["a2", "a5"]}
    acts[1, 1] = np.nan
    with pytest.raises(P.NonFiniteActionsError):
        P.finalize_actions(acts, spec)
    with pytest.raises(P.NonFiniteActionsError, match="shape"):
        P.finalize_actions(np.zeros((50, 6)), spec)


def test_serving_specs_from_checkpoint_or_config_and_consistency():
    extra = {"extra": P.checkpoint_extra(SPECS, TASKS)}
    assert P.serving_specs(extra, {}, {"arm": (9, 7)}) == SPECS
    assert P.serving_specs({}, SPECS, {"arm": (9, 7), "other": (3, 3)}) == SPECS
    with pytest.raises(ValueError, match="9 state and 7 action"):
        P.serving_specs(extra, {}, {"arm": (9, 6)})
    with pytest.raises(ValueError, match="no embodiment spec"):
        P.serving_specs({}, {}, {"arm": (9, 7)})
    assert P.checkpoint_tasks(extra, {"x": "y"}) == {**TASKS, "x": "y"}


def test_episode_payloads_become_store_episodes_with_named_errors():
    ep = P.parse_episode(loads_json(dumps_json(make_episode("r-1"))), SPECS, "robot-r", 3)
    assert ep.source == "robot-r" and ep.round == 3 and ep.intervention.dtype == bool
    bad = make_episode("r-2")
    del bad["action"]
    with pytest.raises(P.ProtocolError) as e:
        P.parse_episode(bad, SPECS, "s", 0)
    assert e.value.field == "action"
    for key, value, field in [
        ("success", "yes", "success"),
        ("embodiment", "arn", "embodiment"),
        ("policy_version", 3, "policy_version"),
        ("state", "x", "state"),
        ("stepz", 1, "stepz"),
    ]:
        bad = make_episode("r-3")
        bad[key] = value
        with pytest.raises(P.ProtocolError) as e:
            P.parse_episode(bad, SPECS, "s", 0)
        assert e.value.field == field and e.value.status == 422
