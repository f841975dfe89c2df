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
_SCALARS = (bool, int, float, str)


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
    try:
        text = storage.read_bytes(path).decode("utf-8")
    except FileNotFoundError:
        raise UniqaError(f"config file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise UniqaError(f"config {path} is not UTF-8 text: {e}") from None
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
    if origin is tuple or hint is tuple:
        return _tuple(hint, value, where)
    if hint in _SCALARS:
        return _scalar(hint, value, where)
    return value


def _tuple(hint: Any, value: Any, where: str) -> Any:
    """A list (or, for ``tuple[X, ...]``, a single value: ``--set tasks=quality``) -> tuple, items checked."""
    args = typing.get_args(hint)
    homogeneous = len(args) == 2 and args[1] is Ellipsis
    if homogeneous and not isinstance(value, (list, tuple, dict)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return value
    if homogeneous:
        return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    return tuple(value)


def _scalar(hint: type, value: Any, where: str) -> Any:
    """``value`` as a ``hint`` (bool / int / float / str), or a one-line error naming the key and the value.

    Safe widenings only: an int for a float, a number for a string (``--set version=2``); never a bool for
    a number or a number for a bool."""
    if isinstance(value, hint) and not (hint in (int, float) and isinstance(value, bool)):
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    wanted = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[hint]
    raise UniqaError(f"config key {where!r} must be {wanted}, got {value!r}")


def config_data(path: str | None = None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A config file's values (YAML/JSON, local or s3://; none: {}) with ``--set`` overrides merged over them:
    what :func:`from_dict` turns into a config over its defaults (:func:`uniqa.stagecli.resolve` first takes the
    stage's inputs and ``out:`` out of it)."""
    return merge(read_config_file(path) if path else {}, parse_overrides(overrides))
