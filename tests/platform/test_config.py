"""The config layer: YAML in, validated; errors name the file, line, key, what is allowed."""

from __future__ import annotations

import textwrap

import pytest

from ramp.platform.config import (
    ConfigError,
    EmbodimentConfig,
    RampConfig,
    UnknownNameError,
    builtin_configs_dir,
    dump_config,
    load_config,
    parse_overrides,
)

GOOD = textwrap.dedent(
    """\
    name: lab
    store:
      root: /data/ramp
      image_encoding: jpeg
    embodiments:
      arm:
        fps: 20
        cameras:
          front: {height: 64, width: 96}
        state_names: [q0, q1]
        action_names: [a0]
        action_low: [-1]
        action_high: [1]
    """
)


def write(tmp_path, text: str):
    p = tmp_path / "cfg.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_loads_and_resolves_defaults(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.store.root == "/data/ramp"
    assert cfg.store.image_encoding == "jpeg"
    assert cfg.store.compression == "zstd"  # default filled in
    arm = cfg.embodiments["arm"]
    assert (arm.state_dim, arm.action_dim, arm.fps) == (2, 1, 20)
    assert arm.cameras["front"].width == 96
    assert cfg.sampling.future_offsets == [12, 24, 36, 48]  # PAPER.md default
    assert cfg.sampling.chunk_size == 50


def test_dump_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    again = write(tmp_path, dump_config(cfg))
    assert load_config(again) == cfg


def test_misspelt_key_names_file_line_allowed_and_suggestion(tmp_path):
    p = write(
        tmp_path,
        """\
        store:
          root: /x
          image_encodng: png
        """,
    )
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg
    assert "line 3" in msg
    assert "store.image_encodng" in msg
    assert "did you mean 'image_encoding'" in msg
    assert "allowed:" in msg and "compression" in msg


def test_unknown_top_level_section(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "embodyments: {}\n"))
    assert "did you mean 'embodiments'" in str(e.value)


def test_bad_value_says_what_is_allowed(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, "store:\n  image_encoding: webp\n"))
    msg = str(e.value)
    assert "store.image_encoding" in msg and "'raw'" in msg and "'jpeg'" in msg and "webp" in msg


def test_errors_inside_embodiments_name_the_path(tmp_path):
    p = write(
        tmp_path,
        """\
        embodiments:
          arm:
            cameras: {front: {height: 64, width: 64}}
            state_names: [q0]
            action_names: [a0, a1]
            action_low: [-1]
            action_high: [1, 1]
        """,
    )
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "embodiments.arm" in msg
    assert "action_low has 1 values but action_names has 2" in msg


def test_misspelt_key_inside_embodiment_suggests(tmp_path):
    p = write(
        tmp_path,
        """\
        embodiments:
          arm:
            cameras: {front: {height: 64, width: 64}}
            state_names: [q0]
            action_name: [a0]
            action_low: [-1]
            action_high: [1]
        """,
    )
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "did you mean 'action_names'" in str(e.value)
    assert "line 5" in str(e.value)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("action_low", [1.0], "must be below action_high"),
        ("state_names", ["q", "q"], "duplicates"),
        ("cameras", {"Front cam": {"height": 32, "width": 32}}, "camera name"),
    ],
)
def test_embodiment_rules(field, value, needle):
    base = {
        "cameras": {"front": {"height": 32, "width": 32}},
        "state_names": ["q0"],
        "action_names": ["a0"],
        "action_low": [-1.0],
        "action_high": [1.0],
    }
    base[field] = value
    with pytest.raises(ValueError, match=needle):
        EmbodimentConfig.model_validate(base)


def test_future_offsets_must_increase():
    with pytest.raises(ConfigError, match="strictly increasing"):
        load_config(None, ["sampling.future_offsets=[24, 12]"])


def test_overrides_merge_and_parse_yaml(tmp_path):
    cfg = load_config(
        write(tmp_path, GOOD),
        ["store.root=s3://bucket/x", "sampling.chunk_size=10", "models.policy.chunk_size=10"],
    )
    assert cfg.store.root == "s3://bucket/x"
    assert cfg.sampling.chunk_size == 10
    assert cfg.store.image_encoding == "jpeg"  # untouched keys survive the merge
    assert parse_overrides(["a.b=[1, 2]", "c=yes"]) == {"a": {"b": [1, 2]}, "c": True}


def test_models_that_cannot_take_the_samples_are_refused_at_load(tmp_path):
    with pytest.raises(ConfigError, match=r"models.policy.chunk_size \(50\) differs from sampling"):
        load_config(write(tmp_path, GOOD), ["sampling.chunk_size=10"])


def test_override_without_equals_is_explained():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["store.root"])


def test_invalid_yaml_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "store: [unclosed\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_empty_file_means_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == RampConfig()


def test_newer_format_version_refused(tmp_path):
    with pytest.raises(ConfigError, match="format_version"):
        load_config(write(tmp_path, "format_version: 99\n"))


def test_builtin_names_resolve_and_suggest():
    names = sorted(p.stem for p in builtin_configs_dir().glob("*.yaml"))
    assert names, "configs/ ships at least one config"
    for name in names:  # every shipped config is valid
        assert isinstance(load_config(name), RampConfig)
    with pytest.raises(ConfigError, match=f"did you mean '{names[0]}'"):
        load_config(names[0][:-1] + "x")


def test_unknown_name_error_suggests():
    err = UnknownNameError("benchmark", "episode-stor", ["episode-store", "models"])
    assert "did you mean 'episode-store'" in str(err)
    assert "available: episode-store, models" in str(err)


def test_relative_store_roots_become_absolute_except_inside_a_ray_job(monkeypatch, tmp_path):
    from ramp.platform.config import JOB_ENV, with_absolute_root

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(JOB_ENV, raising=False)
    cfg = load_config(None, ["store.root=./ramp-data"])
    assert with_absolute_root(cfg).store.root == str(tmp_path / "ramp-data")
    s3 = load_config(None, ["store.root=s3://b/x"])
    assert with_absolute_root(s3).store.root == "s3://b/x"
    monkeypatch.setenv(JOB_ENV, "{}")
    with pytest.raises(ConfigError, match=r"store.root './ramp-data' is relative.*Ray job"):
        with_absolute_root(cfg)
