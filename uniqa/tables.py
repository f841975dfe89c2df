"""Reading and writing the declared Parquet tables (local or ``s3://``), once for every stage.

- :func:`parquet_files` lists a table's files (``_*`` and ``.*`` names are never data);
- :func:`dataset` opens files on their own filesystem as one ``pyarrow.dataset`` (footers only);
- :func:`read_table` reads and validates against a :class:`~uniqa.schema.TableSchema`;
- :func:`write_table` conforms and writes shards; :func:`remove_parts` clears a folder's part files;
- :func:`ray_read` is the same listing handed to Ray Data (the only Ray import here, lazy).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from uniqa import storage
from uniqa.errors import UniqaError
from uniqa.schema import MANIFEST, TableSchema, validate_manifest


def id_hashes(values) -> np.ndarray:
    """8 bytes an id: this process's 64-bit ``hash`` of each of ``values`` (strings), for counting ids or checking
    them unique page by page without holding the strings. Equal ids give equal hashes; two ids may share one, so a
    caller that reports a repeat re-reads the ids behind it."""
    return np.fromiter((hash(v) for v in values), np.int64, len(values))


def parquet_files(uri: str) -> list[str]:
    """The Parquet files of a table: ``uri`` itself if it is a file, else every ``*.parquet`` below it."""
    if not storage.exists(uri):
        raise UniqaError(f"no such file or directory: {uri}")
    if not storage.is_dir(uri):
        return [uri]
    files = [f for f in storage.list_files(uri, (".parquet",)) if not posixpath.basename(f).startswith(("_", "."))]
    if not files:
        raise UniqaError(f"no Parquet files under {uri}")
    return files


def dataset(source: str | list[str]) -> pads.Dataset:
    """A table (URI, or its already-listed files) opened on its filesystem; reads footers only."""
    files = parquet_files(source) if isinstance(source, str) else list(source)
    if not files:
        raise UniqaError("no Parquet files given")
    fs, _ = storage.resolve(files[0])
    try:
        return pads.dataset([storage.resolve(f)[1] for f in files], format="parquet", filesystem=fs)
    except (pa.ArrowInvalid, OSError) as e:
        raise UniqaError(f"cannot read Parquet {files[0]}{' ...' if len(files) > 1 else ''}: {e}") from None


def dataset_schema(source: str | list[str]) -> pa.Schema:
    """The unified schema of a table's files (footers only)."""
    return dataset(source).schema


def read_columns(source: str | list[str], columns: list[str], filter=None) -> pa.Table:
    """Only ``columns`` (and rows matching the optional pyarrow ``filter`` expression) of a table."""
    return dataset(source).to_table(columns=columns, filter=filter)


def count_rows(source: str | list[str]) -> int:
    return dataset(source).count_rows()


def column_chunks(source: str | list[str], column: str = "image_id", filter=None,
                  chunk_rows: int = 1 << 17) -> Iterator[pa.ChunkedArray]:
    """One column of a table (of the rows matching ``filter``), in chunks of about ``chunk_rows``: not the files'
    own batches, which are as small as a file (a lookup of each batch in a million finished ids rebuilt the
    lookup's hash set once per 1,000-row file: 146 s a rerun), nor the whole column."""
    pending, size = [], 0
    for batch in dataset(source).to_batches(columns=[column], filter=filter, batch_size=1 << 16):
        pending.append(batch.column(0))
        size += len(batch)
        if size >= chunk_rows:
            yield pa.chunked_array(pending)
            pending, size = [], 0
    if pending:
        yield pa.chunked_array(pending)


def read_table(uri: str, schema: TableSchema, columns: list[str] | None = None) -> pa.Table:
    """Read every Parquet file of ``uri`` (file or directory, local or s3://) and validate."""
    ds = dataset(uri)
    schema.check_columns(ds.schema, uri)
    table = ds.to_table(columns=columns)
    if columns is not None:
        return table
    if schema is MANIFEST:
        return validate_manifest(table, uri)
    return schema.conform(table, uri)


def write_table(
    table: pa.Table, out: str, schema: TableSchema, rows_per_shard: int = 100_000, prefix: str = "part"
) -> list[str]:
    """Validate and write ``table`` as ``{out}/{prefix}-00000.parquet`` ... ; old shards of the same
    prefix are removed first. Returns the written URIs."""
    table = validate_manifest(table) if schema is MANIFEST else schema.conform(table)
    fs, root = storage.resolve(out)
    fs.create_dir(root, recursive=True)
    for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        name = posixpath.basename(info.path)
        if name.startswith(f"{prefix}-") and name.endswith(".parquet"):
            fs.delete_file(info.path)
    written = []
    n_shards = max(1, -(-len(table) // rows_per_shard))
    for i in range(n_shards):
        shard = table.slice(i * rows_per_shard, rows_per_shard)
        uri = storage.join(out, f"{prefix}-{i:05d}.parquet")
        pq.write_table(shard, storage.resolve(uri)[1], filesystem=fs)
        written.append(uri)
    return written


def remove_parts(folder: str) -> int:
    """Delete ``part-*.parquet`` and ``_tmp-*`` files directly under ``folder`` (a stage that recomputes its
    output from scratch); returns how many."""
    if not storage.exists(folder):
        return 0
    fs, root = storage.resolve(folder)
    stale = [i.path for i in fs.get_file_info(pafs.FileSelector(root, recursive=False))
             if i.type == pafs.FileType.File and posixpath.basename(i.path).startswith(("part-", "_tmp-"))]
    for path in stale:
        fs.delete_file(path)
    return len(stale)


def ray_read(source: str | list[str], columns: list[str] | None = None):
    """A Ray dataset over a table's files (listed here, so Ray does not list them again)."""
    import ray

    files = parquet_files(source) if isinstance(source, str) else list(source)
    fs, _ = storage.resolve(files[0])
    # The files are known: Ray's V1 Parquet reader reads them straight away, where the V2 one first lists them
    # again in extra tasks (seconds of start-up on a small machine).
    context = ray.data.DataContext.get_current()
    v2, context.use_datasource_v2 = context.use_datasource_v2, False
    try:
        return ray.data.read_parquet([storage.resolve(f)[1] for f in files], filesystem=fs, columns=columns)
    finally:
        context.use_datasource_v2 = v2
