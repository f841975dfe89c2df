"""Frozen-dataclass configs: load from YAML/JSON, override with ``--set key=value``, validate early.

Every stage config is a ``@dataclass(frozen=True)`` beside the code it configures, with checks in
``__post_init__``. Unknown keys fail with the list of valid ones, before any Ray work starts.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Sequence
from typing import Any, TypeVar

import yaml

from uniqa import storage
from uniqa.errors import UniqaError

T = TypeVar("T")


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[x, y]"]`` -> ``{"a": {"b": 1}, "c": ["x", "y"]}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UniqaError(f"override {item!r} is not of the form key=value")
        value = yaml.safe_load(raw) if raw.strip() else ""
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_config_file(path: str) -> dict[str, Any]:
    text = storage.read_bytes(path).decode("utf-8")
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise UniqaError(f"cannot parse config {path}: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UniqaError(f"config {path} must be a mapping at the top level, got {type(data).__name__}")
    return data


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build ``cls`` from a (nested) dict; nested dataclass fields are built recursively."""
    if not isinstance(data, dict):
        raise UniqaError(f"config section {where or cls.__name__} must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = (where + "." if where else "") + unknown[0]
        raise UniqaError(f"unknown config key {key!r}; valid keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where + '.' if where else ''}{name}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise UniqaError(f"config {cls.__name__}: {e}") from e


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, where) if len(args) == 1 else value
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is tuple and isinstance(value, list):
        return tuple(value)
    return value


def load_config(cls: type[T], path: str | None = None, overrides: Sequence[str] = ()) -> T:
    """Defaults <- config file (YAML/JSON, local or s3://) <- ``--set`` overrides."""
    data = read_config_file(path) if path else {}
    data = merge(data, parse_overrides(overrides))
    return from_dict(cls, data)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)
