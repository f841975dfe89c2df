"""Exactly-once, resumable Parquet output for Ray Data jobs (captioning, scoring, ...).

How it stays exactly-once across crashes and reruns:
- each batch is written as one Parquet file named by a hash of its ids (``part-<hash>.parquet``), first to a
  ``_tmp-*`` name then moved into place (local), or as one S3 PUT (atomic): a file is there whole or not at all,
  and a retried task rewrites the same name instead of adding a duplicate;
- a rerun reads only the id column of the finished files and drops those ids before any work is done.
Files starting with ``_`` or ``.`` are never read as output (see :func:`uniqa.schema.parquet_files`).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from uniqa import storage
from uniqa.schema import TableSchema


def finished_ids(out: str, id_column: str = "image_id") -> set[str]:
    """Ids already written under ``out`` (reads only ``id_column``); empty when ``out`` does not exist."""
    if not storage.exists(out):
        return set()
    fs, root = storage.resolve(out)
    ids: set[str] = set()
    for info in fs.get_file_info(pafs.FileSelector(root, recursive=False)):
        name = info.path.rsplit("/", 1)[-1]
        if info.type == pafs.FileType.File and name.startswith("part-") and name.endswith(".parquet"):
            ids.update(pq.read_table(info.path, columns=[id_column], filesystem=fs)[id_column].to_pylist())
    return ids


def clean_temporaries(out: str) -> int:
    """Remove ``_tmp-*`` files a killed run left behind; returns how many."""
    if not storage.exists(out):
        return 0
    fs, root = storage.resolve(out)
    stale = [
        i.path
        for i in fs.get_file_info(pafs.FileSelector(root, recursive=False))
        if i.path.rsplit("/", 1)[-1].startswith("_tmp-")
    ]
    for path in stale:
        fs.delete_file(path)
    return len(stale)


def id_array(ids: set[str]) -> pa.Array:
    """Finished ids as a sorted Arrow array: build it once and pass it to :func:`drop_ids` for every batch."""
    return pa.array(sorted(ids), type=pa.string())


def drop_ids(batch: pa.Table, ids: set[str] | pa.Array, id_column: str = "image_id") -> pa.Table:
    """The rows of ``batch`` whose id is not in ``ids`` (for ``map_batches(batch_format="pyarrow")``).
    Pass an :func:`id_array` when there are many ids, so the value set is not rebuilt per batch."""
    if not len(ids) or not len(batch):
        return batch
    value_set = ids if isinstance(ids, pa.Array) else id_array(ids)
    return batch.filter(pc.invert(pc.is_in(batch[id_column], value_set=value_set)))


def batch_file_name(table: pa.Table, id_column: str = "image_id") -> str:
    """Deterministic name from the batch's ids, so a retried write replaces instead of duplicating."""
    digest = hashlib.sha1()
    for value in table[id_column].to_pylist():
        digest.update(str(value).encode())
        digest.update(b"\0")
    return f"part-{digest.hexdigest()[:20]}.parquet"


def write_batch(table: pa.Table, out: str, schema: TableSchema, id_column: str = "image_id") -> pa.Table:
    """Conform ``table`` to ``schema`` and commit it atomically under ``out``; returns one row of counts
    (``rows``, ``errors``, ``file``). Meant for ``map_batches(write_batch, batch_format="pyarrow")``."""
    if not len(table):
        return pa.table({"rows": pa.array([], pa.int64()), "errors": pa.array([], pa.int64()),
                         "file": pa.array([], pa.string())})
    table = schema.conform(table, out)
    fs, root = storage.resolve(out)
    fs.create_dir(root, recursive=True)
    name = batch_file_name(table, id_column)
    final = f"{root}/{name}"
    if storage.is_s3(out):
        pq.write_table(table, final, filesystem=fs)  # one PUT / completed multipart upload: atomic
    else:
        tmp = f"{root}/_tmp-{uuid.uuid4().hex}.parquet"
        pq.write_table(table, tmp, filesystem=fs)
        fs.move(tmp, final)
    errors = len(table) - table["error"].null_count if "error" in table.column_names else 0
    return pa.table({"rows": [len(table)], "errors": [errors], "file": [name]})


@dataclass
class SinkSummary:
    rows_written: int = 0
    errors: int = 0
    files: int = 0
    skipped: int = 0  # rows already finished by an earlier run
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_written / self.seconds if self.seconds > 0 else 0.0

    def line(self, out: str) -> str:
        return (f"{self.rows_written} rows written ({self.errors} with errors), {self.skipped} already done, "
                f"{self.rows_per_second:.1f} rows/s, {self.seconds:.1f} s -> {out}")


def drain(results, total: int | None = None, desc: str = "rows", progress: bool = True) -> SinkSummary:
    """Consume the per-file count rows of a Ray Data ``write_batch`` stage, with a progress bar."""
    from tqdm import tqdm

    summary = SinkSummary()
    start = time.perf_counter()
    with tqdm(total=total, desc=desc, unit="img", disable=not progress) as bar:
        for batch in results.iter_batches(batch_format="pyarrow", batch_size=None):
            n = int(pc.sum(batch["rows"]).as_py() or 0)
            summary.rows_written += n
            summary.errors += int(pc.sum(batch["errors"]).as_py() or 0)
            summary.files += len(batch)
            bar.update(n)
    summary.seconds = time.perf_counter() - start
    return summary
