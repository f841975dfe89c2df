"""What to score: a manifest, an image folder / ``s3://`` prefix, or a text file listing image URIs.

:func:`resolve_input` looks once (on the driver, no Ray) and returns a :class:`ScoreInput`:
- a manifest (Parquet file or folder of shards) is streamed later by Ray (``image_id``, ``image_uri``
  only); nothing but the shard names and footers is read here, and no image folder is listed;
- a folder / prefix is peeked at here (its first page of names tells what it is); up to ``LISTED_WHOLE``
  images become a table here, a larger folder is listed later, page by page, by Ray (:func:`image_rows` turns
  a page into rows), so a million-file tree is never held;
- a list file likewise: up to ``LISTED_WHOLE`` entries become a table here, a longer list is read by Ray in
  pages (deduplicated, relative paths resolved).
Both give ``image_uri`` plus ``image_id`` = a stable hash of the URI.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from uniqa import storage
from uniqa.data.images import IMAGE_SUFFIXES
from uniqa.errors import UniqaError
from uniqa.scoring.config import INPUT_FORMATS
from uniqa.sink import count_done
from uniqa.tables import id_hashes, parquet_files

LIST_SUFFIXES = (".txt", ".lst", ".list")
ID_COLUMNS = ("image_id", "image_uri")
LISTED_WHOLE = 1000  # a folder / list of up to this many images is listed on the driver; a larger one by Ray


@dataclass(frozen=True)
class ScoreInput:
    kind: str  # manifest | images | list
    uri: str
    files: tuple[str, ...] = ()  # manifest shards
    table: pa.Table | None = None  # image_id, image_uri (list; a small image folder)
    rows: int | None = None  # input rows (None: unknown until an image folder is listed)
    duplicates: int = 0  # repeated URIs dropped from a list


def uri_id(uri: str) -> str:
    """Stable id of an image given by URI alone (sha1 of the URI, 20 hex digits)."""
    return hashlib.sha1(uri.encode("utf-8")).hexdigest()[:20]


ID_SCHEMA = pa.schema([pa.field("image_id", pa.string()), pa.field("image_uri", pa.string())])


def image_rows(uris: list[str]) -> pa.Table:
    """One page of an image folder's listing as ``image_id, image_uri`` rows."""
    return pa.table({"image_id": [uri_id(u) for u in uris], "image_uri": uris}, schema=ID_SCHEMA)


def uri_table(uris: list[str]) -> tuple[pa.Table, int]:
    """Deduplicated (order kept) ``image_id, image_uri`` table and the number of duplicates dropped."""
    unique = list(dict.fromkeys(uris))
    return image_rows(unique), len(uris) - len(unique)


def resolve_input(uri: str, input_format: str = "auto") -> ScoreInput:
    """Find out what ``uri`` is (or trust ``input_format``) and check it; see the module docstring.
    A folder is a manifest when the first page of its listing that holds Parquet or image files holds Parquet
    files, otherwise an image folder (listed later, by Ray, page by page)."""
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
    kind = "manifest" if input_format == "manifest" else "images" if input_format == "images" else _folder_kind(uri)
    if kind == "manifest":
        return manifest_input(uri)
    return folder_input(uri)


def _folder_kind(uri: str) -> str:
    for page in storage.iter_files(uri):
        if any(_is_shard(f) for f in page):
            return "manifest"
        if any(f.lower().endswith(IMAGE_SUFFIXES) for f in page):
            return "images"
    return "images"  # nothing of either: folder_input says so


def _is_shard(uri: str) -> bool:
    return uri.endswith(".parquet") and not posixpath.basename(uri).startswith(("_", "."))


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


def folder_input(uri: str) -> ScoreInput:
    """Every image file (by suffix) below a folder / prefix. Up to :data:`LISTED_WHOLE` images are listed here
    into a table (exact counts, finished ids dropped before Ray); a larger folder is only checked here and listed
    by Ray, page by page (see the module docstring)."""
    pages = storage.iter_files(uri, IMAGE_SUFFIXES, LISTED_WHOLE)
    first = next(pages, None)
    if first is None:
        raise UniqaError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {uri}")
    if next(pages, None) is None:
        return ScoreInput("images", uri, table=image_rows(first), rows=len(first))
    return ScoreInput("images", uri)


def list_input(uri: str) -> ScoreInput:
    """A text file of image URIs, one per line (blank lines and ``#`` comments skipped); relative local
    paths are taken relative to the list file's folder; repeated URIs are scored once. Read in pages: up to
    :data:`LISTED_WHOLE` entries become a table here; a longer list is read by Ray, page by page."""
    pages = list_pages(uri, LISTED_WHOLE)
    first = next(pages, None)
    if first is None:
        raise UniqaError(f"list of image URIs {uri} has no entries")
    if next(pages, None) is None:
        table, duplicates = uri_table(first)
        return ScoreInput("list", uri, table=table, rows=len(table), duplicates=duplicates)
    return ScoreInput("list", uri)


def list_pages(uri: str, page_size: int) -> Iterator[list[str]]:
    """The entries of a list file (see :func:`list_input`) in pages of ``page_size``, as read (repeats kept)."""
    base = posixpath.dirname(uri) if storage.is_s3(uri) else storage.resolve(uri)[1].rsplit("/", 1)[0]
    fs, path = storage.resolve(uri)
    page: list[str] = []
    with fs.open_input_stream(path) as stream:
        for line in io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace"):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            page.append(line if _is_absolute(line) else _normalised(storage.join(base, line)))
            if len(page) == page_size:
                yield page
                page = []
    if page:
        yield page


def pages(inp: ScoreInput, page_size: int) -> Iterator[pa.Table]:
    """A streamed input (an image folder or list file too large to list here) as ``image_id, image_uri`` pages,
    each URI once: what one Ray read task yields while the job runs. A list's repeats are dropped by id (the
    set lives in that task, never in the driver)."""
    if inp.kind == "images":
        for page in storage.iter_files(inp.uri, IMAGE_SUFFIXES, page_size):
            yield image_rows(page)
        return
    seen: set[str] = set()
    for page in list_pages(inp.uri, page_size):
        rows = image_rows(page)
        keep = [i not in seen and not seen.add(i) for i in rows["image_id"].to_pylist()]
        yield rows.filter(pa.array(keep, pa.bool_()))


@dataclass(frozen=True)
class Count:
    """What a listing of a streamed input found (:func:`count`)."""

    rows: int  # distinct images
    duplicates: int = 0  # repeated entries of a list
    done: int = 0  # entries whose image is already in the output

    def todo(self) -> int:
        """Images still to score: exact, or (a list with repeats that are also done) at least 1, never less than
        the truth, so a resume that has work left never skips it."""
        left = self.rows - self.done
        return left if not self.duplicates else max(left, 1)


def count(inp: ScoreInput, page_size: int, done: pa.Array | None = None) -> Count:
    """Count a streamed input by a listing of its own, page by page, holding 8 bytes an entry (a 64-bit hash, this
    process's ``hash``; a collision could only miscount, never lose a row); with ``done`` (finished ids), also how
    many entries are finished."""
    entries = found = 0
    hashes = []  # a list's, to count its repeats (a folder has none)
    pending: list[pa.Array] = []  # ids to look up in ``done``: per ~131,072, not per page (its set is rebuilt)
    listing = storage.iter_files(inp.uri, IMAGE_SUFFIXES, page_size) if inp.kind == "images" else list_pages(
        inp.uri, page_size)
    for page in listing:
        entries += len(page)
        if inp.kind != "images":
            hashes.append(id_hashes(page))
        if done is not None and len(done):
            pending.append(image_rows(page)["image_id"])
            if sum(map(len, pending)) >= 1 << 17:
                found, pending = found + count_done(pa.chunked_array(pending), done), []
    if pending:
        found += count_done(pa.chunked_array(pending), done)
    rows = len(np.unique(np.concatenate(hashes))) if hashes else entries
    return Count(rows, entries - rows, found)


def _normalised(uri: str) -> str:
    """``a/b/../c`` -> ``a/c`` (local path or s3:// key)."""
    if storage.is_s3(uri):
        return "s3://" + posixpath.normpath(uri[len("s3://"):])
    return os.path.normpath(uri)


def _is_absolute(uri: str) -> bool:
    return storage.is_s3(uri) or uri.startswith(("/", "file://"))
