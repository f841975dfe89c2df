"""What to score: a manifest, an image folder / ``s3://`` prefix, or a text file listing image URIs.

:func:`resolve_input` looks once (on the driver, no Ray) and returns a :class:`ScoreInput`:
- a manifest (Parquet file or folder of shards) is streamed later by Ray (``image_id``, ``image_uri``
  only); nothing but the shard names and footers is read here, and no image folder is listed;
- a folder / prefix is listed once; a list file is read once; both become a compact Arrow table of
  ``image_uri`` plus ``image_id`` = a stable hash of the URI (deduplicated, relative paths resolved).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from uniqa import storage
from uniqa.data.images import IMAGE_SUFFIXES
from uniqa.errors import UniqaError
from uniqa.scoring.config import INPUT_FORMATS
from uniqa.tables import parquet_files

LIST_SUFFIXES = (".txt", ".lst", ".list")
ID_COLUMNS = ("image_id", "image_uri")


@dataclass(frozen=True)
class ScoreInput:
    kind: str  # manifest | images | list
    uri: str
    files: tuple[str, ...] = ()  # manifest shards
    table: pa.Table | None = None  # image_id, image_uri (images / list)
    rows: int | None = None  # input rows (None: unknown)
    duplicates: int = 0  # repeated URIs dropped from a list


def uri_id(uri: str) -> str:
    """Stable id of an image given by URI alone (sha1 of the URI, 20 hex digits)."""
    return hashlib.sha1(uri.encode("utf-8")).hexdigest()[:20]


def uri_table(uris: list[str]) -> tuple[pa.Table, int]:
    """Deduplicated (order kept) ``image_id, image_uri`` table and the number of duplicates dropped."""
    unique = list(dict.fromkeys(uris))
    table = pa.table({"image_id": [uri_id(u) for u in unique], "image_uri": unique},
                     schema=pa.schema([pa.field("image_id", pa.string()), pa.field("image_uri", pa.string())]))
    return table, len(uris) - len(unique)


def resolve_input(uri: str, input_format: str = "auto") -> ScoreInput:
    """Find out what ``uri`` is (or trust ``input_format``) and check it; see the module docstring.
    A folder is listed once: with Parquet files in it, it is a manifest, otherwise an image folder."""
    uri = str(uri).rstrip("/") or str(uri)
    if not storage.exists(uri):
        raise UniqaError(f"input not found: {uri}")
    if input_format not in INPUT_FORMATS:
        raise UniqaError(f"input_format must be one of {list(INPUT_FORMATS)}, got {input_format!r}")
    if input_format == "list" or (input_format == "auto" and uri.lower().endswith(LIST_SUFFIXES)):
        return list_input(uri)
    if not storage.is_dir(uri):
        if input_format == "images" or (input_format == "auto" and not uri.lower().endswith(".parquet")):
            raise UniqaError(
                f"cannot tell what input {uri} is: give a manifest (.parquet file or folder), an image folder or "
                f"s3:// prefix, or a list of image URIs ({', '.join(LIST_SUFFIXES)}); or set input_format"
            )
        return manifest_input(uri, (uri,))
    files = storage.list_files(uri)
    shards = tuple(f for f in files if f.endswith(".parquet") and not posixpath.basename(f).startswith(("_", ".")))
    if input_format == "manifest" or (input_format == "auto" and shards):
        if not shards:
            raise UniqaError(f"no Parquet files under {uri}")
        return manifest_input(uri, shards)
    return folder_input(uri, files)


def manifest_input(uri: str, files: tuple[str, ...] | None = None) -> ScoreInput:
    """A manifest: its shard files, the two id columns checked, rows counted from the footers."""
    files = tuple(files or parquet_files(uri))
    fs, _ = storage.resolve(uri)
    rows = 0
    for i, file in enumerate(files):
        path = storage.resolve(file)[1]
        try:
            meta = pq.read_metadata(path, filesystem=fs)
        except (OSError, pa.ArrowInvalid) as e:
            raise UniqaError(f"cannot read manifest shard {file}: {e}") from None
        if i == 0:
            _check_id_columns(meta.schema.to_arrow_schema(), file)
        rows += meta.num_rows
    return ScoreInput("manifest", uri, files=files, rows=rows)


def _check_id_columns(schema: pa.Schema, where: str) -> None:
    for col in ID_COLUMNS:
        if col not in schema.names:
            raise UniqaError(f"manifest {where}: missing column {col!r}; found columns {schema.names}")
        if schema.field(col).type not in (pa.string(), pa.large_string()):
            raise UniqaError(f"manifest {where}: column {col!r} has type {schema.field(col).type}, expected string")


def folder_input(uri: str, files: list[str] | None = None) -> ScoreInput:
    """Every image file (by suffix) below a folder / prefix; ``files``: its listing, if already made."""
    files = storage.list_files(uri) if files is None else files
    uris = [f for f in files if f.lower().endswith(IMAGE_SUFFIXES)]
    if not uris:
        raise UniqaError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {uri}")
    table, _ = uri_table(uris)
    return ScoreInput("images", uri, table=table, rows=len(table))


def list_input(uri: str) -> ScoreInput:
    """A text file of image URIs, one per line (blank lines and ``#`` comments skipped); relative local
    paths are taken relative to the list file's folder; repeated URIs are scored once."""
    text = storage.read_bytes(uri).decode("utf-8-sig", errors="replace")
    base = posixpath.dirname(uri) if storage.is_s3(uri) else storage.resolve(uri)[1].rsplit("/", 1)[0]
    uris = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        uris.append(line if _is_absolute(line) else _normalised(storage.join(base, line)))
    if not uris:
        raise UniqaError(f"list of image URIs {uri} has no entries")
    table, duplicates = uri_table(uris)
    return ScoreInput("list", uri, table=table, rows=len(table), duplicates=duplicates)


def _normalised(uri: str) -> str:
    """``a/b/../c`` -> ``a/c`` (local path or s3:// key)."""
    if storage.is_s3(uri):
        return "s3://" + posixpath.normpath(uri[len("s3://"):])
    return os.path.normpath(uri)


def _is_absolute(uri: str) -> bool:
    return storage.is_s3(uri) or uri.startswith(("/", "file://"))
