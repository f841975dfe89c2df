"""The source contract: a reader of one dataset's official files, plus what we know about its scores.

A source's ``read(root, **options)`` returns :class:`Records` (columns before normalisation) or, for
sources that already hold a manifest, a manifest ``pyarrow.Table``. Options arrive as strings from
the command line (``-o key=value``); the ``opt_*`` helpers parse them with errors naming the option.
"""

from __future__ import annotations

import csv
import inspect
import io
import logging
import math
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field

from uniqa import storage
from uniqa.data.images import IMAGE_SUFFIXES  # noqa: F401  (re-exported for the sources)
from uniqa.errors import UniqaError
from uniqa.registry import Registry
from uniqa.schema import TASKS

log = logging.getLogger("uniqa.data")
LEVEL_RANGES = ("published", "observed")


@dataclass
class Records:
    """Columns read from a dataset's files, one entry per image (before normalisation).

    ``mos`` entries may be ``None`` (unlabelled image). The optional ``dataset``, ``task``,
    ``mos_range`` and ``higher_is_better`` override the source's defaults (generic sources set them
    from options). ``notes`` are counts for the summary (e.g. rows dropped by the dataset's protocol)."""

    image_id: list[str]
    image_uri: list[str]
    mos: list[float | None]
    group: list[str] | None = None  # content group (reference image); default: the image itself
    split: list[str | None] | None = None  # official split (train/val/test) if the dataset has one
    comments: list[list[str] | None] | None = None
    attrs: list[dict[str, float]] | None = None
    dataset: str | None = None
    task: str | None = None
    mos_range: tuple[float, float] | None = None
    higher_is_better: bool | None = None
    files_listed: bool = False  # image_uri came from a storage listing: no existence check needed
    notes: dict[str, int] = field(default_factory=dict)
    image_dir: str | None = None  # the image folder the reader used (said in the prepare summary)
    split_source: str | None = None  # where ``split`` came from, e.g. "official (AADB label lists)"
    decode_size: int | None = None  # shorter side every image is resized to before its views (None: as stored)

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
    own min and max, for generic sources); ``higher_is_better=False`` flips DMOS-style scores.
    ``task=None`` means the task comes from the data (the ``manifest`` source). ``level_range`` says
    which range the level words are binned over: ``published`` (``mos_range``) or ``observed`` (the
    labelled data's own min and max, e.g. TID2013, whose MOS fills only about 0-7.3 of its 0-9 scale)."""

    name: str
    task: str | None  # quality | aesthetics
    read: Callable[..., Records]  # read(root: str, **options) -> Records | pyarrow.Table
    mos_range: tuple[float, float] | None
    higher_is_better: bool = True
    description: str = ""
    options: dict[str, str] = field(default_factory=dict)  # option name -> help (column/path overrides); the
    # default is the read function's keyword default, shown by option_help (a help names a default only where the
    # keyword's is empty or None and the reader works it out)
    level_range: str = "published"  # published | observed

    def option_help(self, option: str) -> str:
        """The option's help with its default (the read function's keyword default, when it is a value)."""
        default = inspect.signature(self.read).parameters[option].default
        if default in (None, "") or default is inspect.Parameter.empty:
            return self.options[option]
        value = str(default).lower() if isinstance(default, bool) else str(default)
        return f"{self.options[option]} (default {value!r})" if " " in value else \
            f"{self.options[option]} (default {value})"


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


def read_file(uri: str) -> bytes:
    """A dataset's metadata file as bytes; a missing or unreadable one is a one-line error naming it."""
    try:
        if not storage.exists(uri):
            raise UniqaError(f"expected dataset file not found: {uri}")
        if storage.is_dir(uri):
            raise UniqaError(f"expected a file but found a directory: {uri}")
        return storage.read_bytes(uri)
    except OSError as e:
        raise UniqaError(f"cannot read {uri}: {e}") from e


def read_text(uri: str) -> str:
    """A dataset's metadata file as text (UTF-8, else Latin-1)."""
    data = read_file(uri)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_csv_rows(uri: str, required: list[str]) -> list[dict[str, str]]:
    """Rows of a CSV as dicts; fails naming the file and the first missing column."""
    try:
        reader = csv.DictReader(io.StringIO(read_text(uri)))
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        for col in required:
            if col not in header:
                raise UniqaError(f"{uri}: expected column {col!r}, found columns {header}")
        return list(reader)
    except csv.Error as e:
        raise UniqaError(f"{uri}: not a readable CSV file: {e}") from e


def read_columns(uri: str, min_columns: int) -> list[tuple[int, list[str]]]:
    """Whitespace-separated lines as (line number, fields); blank lines skipped, short lines an error."""
    rows = []
    for number, line in enumerate(read_text(uri).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < min_columns:
            raise UniqaError(f"{uri}: line {number} has {len(fields)} fields, expected {min_columns}: {line!r}")
        rows.append((number, fields))
    return rows


def to_float(value, uri: str, column: str, row: int) -> float:
    """A finite number from a metadata cell; anything else names the file, row, column and value."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if not math.isfinite(out):
        raise UniqaError(f"{uri}: row {row} column {column!r} has non-numeric value {value!r}")
    return out


def optional_floats(row: dict, columns: tuple[str, ...], uri: str, line: int) -> dict[str, float]:
    """``{column: number}`` for the columns present and non-empty in ``row`` (attrs)."""
    out = {}
    for col in columns:
        value = row.get(col)
        if value is not None and str(value).strip() != "":
            out[col] = to_float(value, uri, col, line)
    return out


def image_id(dataset: str, name: str) -> str:
    """Stable id: dataset name + the image's path relative to the dataset's image folder."""
    return f"{dataset}/{name}"


def image_uri(root: str, image_dir: str, name: str) -> str:
    """``root/image_dir/name`` (``image_dir`` may be empty)."""
    parts = [p for p in (image_dir, name) if p]
    return storage.join(root, *parts)


def csv_records(
    dataset: str, root: str, scores_file: str, image_dir: str, name_column: str, mos_column: str,
    attr_columns: tuple[str, ...] = (),
) -> Records:
    """Records of a CSV with an image-name column and a score column (KonIQ, FLIVE); the ``attr_columns``
    present in a row go to ``attrs``. An empty name or a non-numeric score names the file, row and column."""
    uri = storage.join(root, scores_file)
    rows = read_csv_rows(uri, [name_column, mos_column])
    names = []
    for line, row in enumerate(rows, start=2):
        names.append((row[name_column] or "").strip())
        if not names[-1]:
            raise UniqaError(f"{uri}: row {line} column {name_column!r} is empty")
    return Records(
        image_id=[image_id(dataset, n) for n in names],
        image_uri=[image_uri(root, image_dir, n) for n in names],
        mos=[to_float(r[mos_column], uri, mos_column, line) for line, r in enumerate(rows, start=2)],
        attrs=[optional_floats(r, attr_columns, uri, line) for line, r in enumerate(rows, start=2)]
        if attr_columns else None,
        image_dir=image_dir,
    )


def find_image_dir(dataset: str, root: str, candidates: tuple[str, ...], chosen: str = "") -> str:
    """The image folder to read: ``chosen`` when given (``-o image_dir=...``), else the first of the dataset's
    published ``candidates`` present under ``root``, else the first candidate (the missing-file check then
    names the files). The choice is logged and said in the prepare summary (``Records.image_dir``)."""
    if chosen:
        log.info("%s: image folder %s (given)", dataset, chosen)
        return chosen
    for folder in candidates:
        if storage.is_dir(storage.join(root, folder)):
            log.info("%s: image folder %s (found under %s; looked for %s)", dataset, folder, root,
                     ", ".join(candidates))
            return folder
    log.warning("%s: none of the image folders %s is under %s; expecting %s", dataset, ", ".join(candidates), root,
                candidates[0])
    return candidates[0]


def parent(uri: str) -> str:
    """The folder holding ``uri`` (local or s3://)."""
    return "s3://" + posixpath.dirname(uri[len("s3://"):]) if storage.is_s3(uri) else posixpath.dirname(uri)


# ------------------------------------------------------------------------- option parsing


def opt_float(name: str, value) -> float | None:
    """An optional float option (``""``/``None`` -> ``None``)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UniqaError(f"option {name}={value!r} is not a number") from None


def opt_int(name: str, value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UniqaError(f"option {name}={value!r} is not an integer") from None


def opt_size(name: str, value) -> int | None:
    """A size in pixels, or ``none`` / empty for None (as stored)."""
    if value is None or str(value).strip().lower() in ("", "none", "null"):
        return None
    size = opt_int(name, value)
    if size < 1:
        raise UniqaError(f"option {name}={value!r} is not a positive number of pixels (or none)")
    return size


def opt_bool(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y", "on"):
        return True
    if text in ("0", "false", "no", "n", "off"):
        return False
    raise UniqaError(f"option {name}={value!r} is not a boolean; use true or false")


def opt_task(value: str) -> str:
    if value not in TASKS:
        raise UniqaError(f"option task={value!r} is not a task; valid: {list(TASKS)}")
    return value


def opt_range(mos_min, mos_max) -> tuple[float, float] | None:
    """``(lo, hi)`` from the ``mos_min``/``mos_max`` options; both or neither."""
    lo, hi = opt_float("mos_min", mos_min), opt_float("mos_max", mos_max)
    if (lo is None) != (hi is None):
        raise UniqaError("options mos_min and mos_max go together: give both or neither")
    if lo is None:
        return None
    if not hi > lo:
        raise UniqaError(f"option mos_max={hi} must be greater than mos_min={lo}")
    return lo, hi


