"""Local and ``s3://`` storage through pyarrow filesystems (never ad-hoc path handling).

S3 settings come from the standard AWS environment: credentials via the usual chain,
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` for an S3-compatible endpoint (MinIO, moto, Ceph),
``AWS_REGION`` / ``AWS_DEFAULT_REGION`` for the region.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from functools import lru_cache
from urllib.parse import urlparse

import pyarrow.fs as pafs

from uniqa.errors import UniqaError

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def looks_like_path(text: str) -> bool:
    """The one rule for "checkpoint path or open_clip tag": a URI, a path with a separator, or a name with a
    checkpoint suffix is a path (and must exist); anything else (``openai``, ``laion2b_s34b_b88k``) is a tag.
    Decided from the text alone, so configs can apply it without touching storage."""
    text = str(text)
    return is_s3(text) or "/" in text or os.sep in text or text.lower().endswith(CHECKPOINT_SUFFIXES)


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def s3_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


@lru_cache(maxsize=8)
def _s3_filesystem(endpoint: str | None, region: str | None) -> pafs.S3FileSystem:
    kwargs: dict = {}
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
        kwargs["allow_bucket_creation"] = True
    if region:
        kwargs["region"] = region
    return pafs.S3FileSystem(**kwargs)


def s3_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def s3_filesystem() -> pafs.S3FileSystem:
    return _s3_filesystem(s3_endpoint(), s3_region())


def resolve(uri: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """``uri`` -> (filesystem, path inside it). Local paths become absolute."""
    uri = os.fspath(uri)
    if is_s3(uri):
        return s3_filesystem(), uri[len("s3://"):].rstrip("/")
    if "://" in uri and not uri.startswith("file://"):
        raise UniqaError(f"unsupported URI scheme in {uri!r}: use a local path or s3://bucket/key")
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(path))


def ray_storage(uri: str | os.PathLike) -> tuple[pafs.FileSystem | None, str]:
    """Where Ray Train / Tune keep a run (their ``storage_path`` and ``storage_filesystem``): an ``s3://`` URI as
    (its pyarrow filesystem, bucket/key), a local path as (None: Ray's own local filesystem, the absolute path)."""
    uri = os.fspath(uri)
    return resolve(uri) if is_s3(uri) else (None, absolute(uri))


def absolute(uri: str | os.PathLike) -> str:
    """``uri`` with a local path made absolute (``s3://`` unchanged): for paths handed to Ray Train / Tune
    workers, whose working directory is not the caller's."""
    uri = os.fspath(uri)
    return uri if is_s3(uri) else resolve(uri)[1]


def join(base: str, *parts: str) -> str:
    """Join path parts, keeping an ``s3://`` prefix intact."""
    base = os.fspath(base)
    if is_s3(base):
        return "s3://" + posixpath.join(base[len("s3://"):], *parts)
    return os.path.join(base, *parts)


def exists(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def read_bytes(uri: str) -> bytes:
    """Whole object/file as bytes; a missing one raises ``FileNotFoundError`` naming the URI."""
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"no such file: {uri}") from e
    except OSError as e:
        if "not found" in str(e).lower() or "does not exist" in str(e).lower():
            raise FileNotFoundError(f"no such file: {uri}") from e
        raise


def write_bytes(uri: str, data: bytes) -> None:
    fs, path = resolve(uri)
    parent = posixpath.dirname(path) if is_s3(uri) else os.path.dirname(path)
    if parent:
        fs.create_dir(parent, recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(data)


def list_files(uri: str, suffixes: tuple[str, ...] | None = None) -> list[str]:
    """All files below ``uri`` (recursive), sorted, as URIs of the same kind as ``uri``. Builds the whole list:
    for a collection of any size, page through :func:`iter_files` instead."""
    return sorted(uri for page in iter_files(uri, suffixes) for uri in page)


def iter_files(uri: str, suffixes: tuple[str, ...] | None = None, page_size: int = 1000) -> Iterator[list[str]]:
    """The files below ``uri`` (recursive; ``suffixes``: only names ending so, any case) as pages of at most
    ``page_size`` URIs of the same kind as ``uri``, listed lazily: the first page of a million-file tree comes
    after one folder's (or one S3 page's) listing, and no more than one folder / page is ever held.

    Local: one folder at a time, depth first, names sorted within a folder; ``s3://``: ListObjectsV2 pages
    (key order) through boto3, with the same endpoint and region as :func:`s3_filesystem`."""
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    names = _s3_keys(uri) if is_s3(uri) else _local_files(resolve(uri)[1])
    page: list[str] = []
    for name in names:
        if suffixes and not name.lower().endswith(suffixes):
            continue
        page.append(name)
        if len(page) == page_size:
            yield page
            page = []
    if page:
        yield page


def _local_files(root: str) -> Iterator[str]:
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no such folder: {root}")
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as it:
            entries = sorted((e.name, e.is_dir(follow_symlinks=True), e.path) for e in it)
        for _, is_folder, path in entries:
            if not is_folder:
                yield path
        stack.extend(path for _, is_folder, path in reversed(entries) if is_folder)  # first name on top


def _s3_keys(uri: str) -> Iterator[str]:
    import boto3

    bucket, _, prefix = uri[len("s3://"):].partition("/")
    prefix = prefix.rstrip("/")
    client = boto3.client("s3", endpoint_url=s3_endpoint(), region_name=s3_region())
    found = False
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else "")
    for response in pages:
        for item in response.get("Contents", ()):
            found = True
            if not item["Key"].endswith("/"):  # a "folder" marker object is not a file
                yield f"s3://{bucket}/{item['Key']}"
    if not found and not exists(uri):
        raise FileNotFoundError(f"no such prefix: {uri}")
