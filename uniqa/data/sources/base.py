"""The source contract: a reader of one dataset's official files, plus what we know about its scores."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field

from uniqa import storage
from uniqa.errors import UniqaError
from uniqa.registry import Registry


@dataclass
class Records:
    """Columns read from a dataset's files, one entry per image (before normalisation)."""

    image_id: list[str]
    image_uri: list[str]
    mos: list[float]
    group: list[str] | None = None  # content group (reference image); default: the image itself
    split: list[str] | None = None  # official split (train/val/test) if the dataset has one
    comments: list[list[str]] | None = None
    attrs: list[dict[str, float]] | None = None

    def __post_init__(self):
        n = len(self.image_id)
        for name in ("image_uri", "mos", "group", "split", "comments", "attrs"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise AssertionError(f"Records.{name} has {len(value)} entries, image_id has {n}")


@dataclass(frozen=True)
class Source:
    """A registered dataset reader.

    ``mos_range`` is the published score range used for min-max normalisation (``None``: the data's
    own min and max, for generic sources); ``higher_is_better=False`` flips DMOS-style scores."""

    name: str
    task: str  # quality | aesthetics
    read: Callable[..., Records]  # read(root: str, **options) -> Records
    mos_range: tuple[float, float] | None
    higher_is_better: bool = True
    description: str = ""
    options: dict[str, str] = field(default_factory=dict)  # option name -> help (column/path overrides)


SOURCES: Registry[Source] = Registry("dataset")


def register_source(**kwargs) -> Callable:
    """Decorator: ``@register_source(name=..., task=..., mos_range=...)`` over a ``read`` function."""

    def deco(read: Callable[..., Records]) -> Callable[..., Records]:
        SOURCES.register(kwargs["name"])(Source(read=read, **kwargs))
        return read

    return deco


def get_source(name: str) -> Source:
    return SOURCES.get(name)


# ------------------------------------------------------------------------- helpers for readers


def read_text(uri: str) -> str:
    """A dataset's metadata file as text; a missing one is a one-line error naming it."""
    if not storage.exists(uri):
        raise UniqaError(f"expected dataset file not found: {uri}")
    data = storage.read_bytes(uri)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_csv_rows(uri: str, required: list[str]) -> list[dict[str, str]]:
    """Rows of a CSV as dicts; fails naming the file and the first missing column."""
    reader = csv.DictReader(io.StringIO(read_text(uri)))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    for col in required:
        if col not in header:
            raise UniqaError(f"{uri}: expected column {col!r}, found columns {header}")
    return list(reader)


def to_float(value: str, uri: str, column: str, row: int) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UniqaError(f"{uri}: row {row} column {column!r} has non-numeric value {value!r}") from None


def image_id(dataset: str, name: str) -> str:
    """Stable id: dataset name + the image's path relative to the dataset root."""
    return f"{dataset}/{name}"
