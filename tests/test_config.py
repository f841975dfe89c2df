"""Configs: defaults <- YAML/JSON file <- ``--set`` overrides; unknown keys and bad values fail early."""

from __future__ import annotations

import dataclasses

import pytest

from uniqa import storage
from uniqa.config import config_data, from_dict, parse_overrides
from uniqa.data.prepare import PrepareConfig
from uniqa.errors import UniqaError


def load(cls, path=None, overrides=()):
    """What ``uniqa <stage> --config PATH --set ...`` builds (uniqa.stagecli.resolve, less the stage's inputs)."""
    return from_dict(cls, config_data(path, overrides))


@dataclasses.dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    names: tuple[str, ...] = ("a",)


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = "x"
    inner: Inner = Inner()
    limit: int | None = None


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "prep.yaml"
    path.write_text("binning: quantile\nseed: 3\ntrain_fraction: 0.7\n")
    cfg = load(PrepareConfig, str(path), ["seed=11", "allow_missing=true"])
    assert cfg == PrepareConfig(binning="quantile", seed=11, train_fraction=0.7, allow_missing=True)
    assert load(PrepareConfig) == PrepareConfig()


def test_json_file_on_s3(s3_bucket):
    storage.write_bytes(f"{s3_bucket}/cfg.json", b'{"splits": "seeded", "rows_per_shard": 7}')
    cfg = load(PrepareConfig, f"{s3_bucket}/cfg.json", ["rows_per_shard=9"])
    assert (cfg.splits, cfg.rows_per_shard) == ("seeded", 9)


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(UniqaError, match=r"unknown config key 'bins'; valid keys: \['allow_missing', 'binning',"):
        load(PrepareConfig, None, ["bins=4"])
    with pytest.raises(UniqaError, match=r"unknown config key 'inner.momentum'; valid keys: \['lr', 'names'\]"):
        from_dict(Outer, {"inner": {"momentum": 0.9}})


def test_bad_values_fail_in_post_init():
    with pytest.raises(UniqaError, match=r"binning must be one of \['equal', 'quantile'\], got 'log'"):
        load(PrepareConfig, None, ["binning=log"])
    with pytest.raises(UniqaError, match=r"train_fraction must be in \(0, 1\), got 1.5"):
        load(PrepareConfig, None, ["train_fraction=1.5"])
    with pytest.raises(UniqaError, match=r"splits must be one of \['auto', 'seeded'\]"):
        PrepareConfig(splits="official")


def test_nested_overrides_and_coercion():
    assert parse_overrides(["inner.lr=2", "inner.names=[b, c]", "name=y"]) == {
        "inner": {"lr": 2, "names": ["b", "c"]}, "name": "y"}
    cfg = from_dict(Outer, parse_overrides(["inner.lr=2", "inner.names=[b, c]", "limit=5"]))
    assert cfg == Outer(name="x", inner=Inner(lr=2.0, names=("b", "c")), limit=5)
    assert isinstance(cfg.inner.lr, float) and cfg.inner.names == ("b", "c")
    with pytest.raises(UniqaError, match=r"override 'seed' is not of the form key=value"):
        parse_overrides(["seed"])


def test_bad_config_files(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(UniqaError, match=r"must be a mapping at the top level, got list"):
        load(PrepareConfig, str(tmp_path / "list.yaml"))
    (tmp_path / "broken.yaml").write_text("a: [1, 2\n")
    with pytest.raises(UniqaError, match=r"cannot parse config .*broken.yaml"):
        load(PrepareConfig, str(tmp_path / "broken.yaml"))
    (tmp_path / "empty.yaml").write_text("")
    assert load(PrepareConfig, str(tmp_path / "empty.yaml")) == PrepareConfig()


def test_scalar_types_are_checked_naming_key_and_value(tmp_path):
    with pytest.raises(UniqaError, match=r"config key 'seed' must be an integer, got 'x'"):
        load(PrepareConfig, None, ["seed=x"])
    with pytest.raises(UniqaError, match=r"config key 'train_fraction' must be a number, got 'abc'"):
        load(PrepareConfig, None, ["train_fraction=abc"])
    with pytest.raises(UniqaError, match=r"config key 'allow_missing' must be true or false, got 1"):
        load(PrepareConfig, None, ["allow_missing=1"])
    with pytest.raises(UniqaError, match=r"config key 'rows_per_shard' must be an integer, got 2.5"):
        load(PrepareConfig, None, ["rows_per_shard=2.5"])
    with pytest.raises(UniqaError, match=r"config key 'seed' must be an integer, got True"):
        load(PrepareConfig, None, ["seed=true"])
    with pytest.raises(UniqaError, match=r"config key 'inner.names\[1\]' must be a string, got \[1\]"):
        from_dict(Outer, {"inner": {"names": ["a", [1]]}})
    assert from_dict(Outer, {"name": 2, "inner": {"names": "b"}}) == Outer(name="2", inner=Inner(names=("b",)))
    assert from_dict(Outer, {"limit": None}).limit is None
    with pytest.raises(UniqaError, match=r"config key 'limit' must be an integer, got 'many'"):
        from_dict(Outer, {"limit": "many"})


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(UniqaError, match=r"config file not found: .*nope.yaml"):
        load(PrepareConfig, str(tmp_path / "nope.yaml"))
