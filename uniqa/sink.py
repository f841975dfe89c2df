"""Exactly-once, resumable Parquet output for Ray Data jobs (captioning, scoring, ...).

How it stays exactly-once across crashes and reruns:
- each batch is written as one Parquet file named by a hash of its ids (``part-<hash>.parquet``), first to a
  ``_tmp-*`` name then moved into place (local), or as one S3 PUT (atomic): a file is there whole or not at all,
  and a retried task rewrites the same name instead of adding a duplicate;
- a rerun reads only the id column of the finished files and drops those ids before any work is done;
- a write still in flight when a run was killed may commit after the rerun looked: :func:`settle` finds such
  late files when the rerun ends and removes each whose ids are all written again (no row is ever lost).
Files starting with ``_`` or ``.`` are never read as output (see :func:`uniqa.tables.parquet_files`).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from uniqa import storage
from uniqa.schema import TableSchema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputState:
    """What an output folder holds: the finished ids and the part files they were read from (one listing).
    The ids are one Arrow array (about 24 bytes an id), never a Python set: a million finished images cost the
    driver tens of MB, not hundreds."""

    ids: pa.Array  # finished ids, each once (string)
    files: frozenset[str]  # part file names
    removed: tuple[str, ...] = ()  # duplicate part files removed while reading (see output_state)

    def id_set(self) -> set[str]:
        """The ids as a Python set, for small outputs (tests, a few thousand rows)."""
        return set(self.ids.to_pylist())


def part_names(out: str) -> list[str]:
    """Names of the finished ``part-*.parquet`` files directly under ``out`` (sorted; [] if ``out`` is missing)."""
    if not storage.exists(out):
        return []
    fs, root = storage.resolve(out)
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=False))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.File and _is_part(i.base_name))


def _is_part(name: str) -> bool:
    return name.startswith("part-") and name.endswith(".parquet")


def output_state(out: str, id_column: str = "image_id") -> OutputState:
    """Read the ids of every part file under ``out`` (only ``id_column``, files read in parallel; counted in
    Arrow). A file whose ids all appear in other files (a killed run's late commit, see :func:`settle`) is a
    duplicate and is removed: no row is lost."""
    names = part_names(out)
    if not names:
        return OutputState(pa.array([], pa.string()), frozenset())
    fs, root = storage.resolve(out)

    def ids_of(name: str) -> pa.ChunkedArray:
        return pq.read_table(f"{root}/{name}", columns=[id_column], filesystem=fs)[id_column]

    with ThreadPoolExecutor(max_workers=8) as pool:
        columns = list(pool.map(ids_of, names))
    lengths = np.array([len(c) for c in columns], dtype=np.int64)
    rows = pa.table({"id": pa.chunked_array([chunk for c in columns for chunk in c.chunks], pa.string()),
                     "file": np.repeat(np.arange(len(names), dtype=np.int32), lengths)})
    pairs = rows.group_by(["id", "file"]).aggregate([])  # a file repeating an id within itself counts once
    per_id = pairs.group_by("id").aggregate([("file", "count")])
    ids = per_id["id"].combine_chunks()
    if len(per_id) == len(pairs):  # no id in two files: nothing to remove (the usual case)
        return OutputState(ids, frozenset(names))
    removed = _remove_covered(fs, root, names, pairs, per_id)
    return OutputState(ids, frozenset(names) - set(removed), removed)


def _remove_covered(fs, root: str, names: list[str], pairs: pa.Table, per_id: pa.Table) -> tuple[str, ...]:
    """Delete the part files every id of which another file holds too, smallest first (see :func:`output_state`).
    Only the ids held by several files and the files made of them alone are handled in Python."""
    shared = per_id.filter(pc.greater(per_id["file_count"], 1))
    counts = dict(zip(shared["id"].to_pylist(), shared["file_count"].to_pylist()))
    flagged = pairs.append_column("shared", pc.is_in(pairs["id"], value_set=shared["id"]))
    per_file = flagged.group_by("file").aggregate([("shared", "all"), ("id", "count")])
    candidates = per_file.filter(per_file["shared_all"])
    members: dict[int, list[str]] = {}
    for f, i in zip(*(flagged.filter(pc.is_in(flagged["file"], value_set=candidates["file"]))
                      .column(c).to_pylist() for c in ("file", "id"))):
        members.setdefault(f, []).append(i)
    removed = []
    for f in sorted(members, key=lambda f: (len(members[f]), names[f])):  # the smallest covered files go first
        if all(counts[i] > 1 for i in members[f]):
            fs.delete_file(f"{root}/{names[f]}")
            removed.append(names[f])
            for i in members[f]:
                counts[i] -= 1
    return tuple(removed)


def settle(out: str, before: frozenset[str], written: set[str], id_column: str = "image_id") -> tuple[str, ...]:
    """After a run: part files that were neither there when it started (``before``) nor written by it are late
    commits of a killed earlier run; their rows were written again by this run, so the duplicates are removed.
    Costs one listing when there are none. Returns the names removed."""
    if set(part_names(out)) <= before | written:
        return ()
    removed = output_state(out, id_column).removed
    if removed:
        log.warning("removed %d part file(s) under %s that a killed run committed late, whose rows this run wrote "
                    "again: %s", len(removed), out, ", ".join(removed))
    return removed


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


def id_array(ids: set[str] | pa.Array) -> pa.Array:
    """Finished ids as an Arrow array (an :attr:`OutputState.ids` already is one): build it once and pass it to
    :func:`drop_ids` for every batch."""
    return ids if isinstance(ids, pa.Array) else pa.array(sorted(ids), type=pa.string())


def count_done(ids: pa.Array | pa.ChunkedArray, done: pa.Array) -> int:
    """How many of ``ids`` are in ``done`` (an :attr:`OutputState.ids`)."""
    return int(pc.sum(pc.is_in(ids, value_set=done)).as_py() or 0) if len(done) else 0


def drop_ids(batch: pa.Table, ids: set[str] | pa.Array, id_column: str = "image_id") -> pa.Table:
    """The rows of ``batch`` whose id is not in ``ids`` (for ``map_batches(batch_format="pyarrow")``).
    Pass an :func:`id_array` when there are many ids, so the value set is not rebuilt per batch."""
    if not len(ids) or not len(batch):
        return batch
    value_set = id_array(ids)
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
    file_names: set[str] = field(default_factory=set)  # part files written by this run

    @property
    def rows_per_second(self) -> float:
        return self.rows_written / self.seconds if self.seconds > 0 else 0.0


def drain(results, total: int | Callable[[], int | None] | None = None, desc: str = "rows",
          progress: bool = True) -> SinkSummary:
    """Consume the per-file count rows of a Ray Data ``write_batch`` stage, with one progress line for the whole
    job (rows done, rows/s, ETA). ``total`` may be a function, asked until it knows (e.g. a folder still being
    counted): the line shows no ETA until then."""
    from tqdm import tqdm

    summary = SinkSummary()
    start = time.perf_counter()
    pending = total if callable(total) else None
    with tqdm(total=None if pending else total, desc=desc, unit="img", disable=not progress,
              dynamic_ncols=True, smoothing=0.05) as bar:
        for batch in results.iter_batches(batch_format="pyarrow", batch_size=None):
            n = int(pc.sum(batch["rows"]).as_py() or 0)
            summary.rows_written += n
            summary.errors += int(pc.sum(batch["errors"]).as_py() or 0)
            summary.files += len(batch)
            summary.file_names.update(batch["file"].to_pylist())
            if pending is not None and (known := pending()) is not None:
                bar.total, pending = max(known, bar.n + n), None
            bar.update(n)
    summary.seconds = time.perf_counter() - start
    return summary
