"""The Ray Data wiring of curation (the only Ray code of the stage).

- :func:`source`: the rows to filter, as a Ray dataset: the scores files, or (with a manifest) the scores
  left-joined with the manifest bucket by bucket after :func:`partition` hash-partitioned both sides by
  image_id into ``OUT/_work`` (no shuffle library, no side held whole anywhere);
- :func:`sketch_pass`: per-block KLL sketches, merged on the driver (a few KB per group and column);
- :func:`filter_pass`: decide every block, write its kept and rejected rows (:func:`uniqa.sink.write_batch`),
  and return one row of counts and histogram counts per block, summed on the driver.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from uniqa import sink, storage
from uniqa.curation import quantiles
from uniqa.curation.decide import Plan, block_sketches, left_join, split
from uniqa.errors import UniqaError
from uniqa.partition import partition_of
from uniqa.schema import TableSchema
from uniqa.tables import ray_read


def write_buckets(batch: pa.Table, folder: str, buckets: int, schema: pa.Schema) -> pa.Table:
    """Write a block's rows into ``folder/bNNNNN/`` by the hash of their image_id; returns its row count."""
    if len(batch):
        batch = batch.select(schema.names).cast(schema)
        fs, root = storage.resolve(folder)
        parts = partition_of(batch["image_id"], buckets).to_numpy()
        for b in np.unique(parts):
            path = f"{root}/b{b:05d}"
            fs.create_dir(path, recursive=True)
            pq.write_table(batch.filter(pa.array(parts == b)), f"{path}/part-{uuid.uuid4().hex}.parquet",
                           filesystem=fs)
    return pa.table({"rows": [len(batch)]})


def partition(files: list[str], folder: str, buckets: int, schema: pa.Schema) -> int:
    """Hash-partition a table's rows into ``buckets`` folders under ``folder``; returns the rows written."""
    ds = ray_read(files, columns=schema.names).map_batches(
        write_buckets, fn_kwargs={"folder": folder, "buckets": buckets, "schema": schema}, batch_format="pyarrow",
        batch_size=None)
    return sum(int(b["rows"].to_numpy().sum()) for b in ds.iter_batches(batch_format="pyarrow", batch_size=None))


def read_bucket(folder: str, schema: pa.Schema, columns: list[str]) -> pa.Table:
    if not storage.exists(folder):
        return schema.empty_table().select(columns)
    fs, _ = storage.resolve(folder)
    files = [storage.resolve(f)[1] for f in storage.list_files(folder, (".parquet",))]
    return pads.dataset(files, schema=schema, format="parquet", filesystem=fs).to_table(columns=columns)


@dataclass(frozen=True)
class Join:
    """The scores and the manifest, each hash-partitioned by image_id into ``buckets`` folders under ``work``
    (``work/scores/bNNNNN``, ``work/manifest/bNNNNN``: :func:`partition`)."""

    work: str
    buckets: int
    scores_schema: pa.Schema
    manifest_schema: pa.Schema


def load_bucket(batch: pa.Table, join: Join, score_columns: list[str], manifest_columns: list[str]) -> pa.Table:
    """One bucket's scores rows joined with its manifest rows (see :func:`uniqa.curation.decide.left_join`)."""
    tables = []
    for b in batch["bucket"].to_pylist():
        scores = read_bucket(storage.join(join.work, "scores", f"b{b:05d}"), join.scores_schema, score_columns)
        manifest = read_bucket(storage.join(join.work, "manifest", f"b{b:05d}"), join.manifest_schema,
                               manifest_columns)
        tables.append(left_join(scores, manifest, manifest_columns))
    return pa.concat_tables(tables)


def source(scores_files: list[str], score_columns: list[str], join: Join | None = None,
           manifest_columns: list[str] = ()):
    """The scores rows (``score_columns`` of them), joined bucket by bucket with ``manifest_columns`` of the
    manifest when ``join`` is given."""
    import ray

    if join is None:
        return ray_read(scores_files, columns=score_columns)
    return ray.data.from_items([{"bucket": b} for b in range(join.buckets)]).map_batches(
        load_bucket, batch_size=1, batch_format="pyarrow",
        fn_kwargs={"join": join, "score_columns": score_columns, "manifest_columns": list(manifest_columns)})


def sketch_pass(ds, plan: Plan, max_groups: int) -> dict:
    """Merged sketches: ``{(group or None, column): kll_doubles_sketch}`` (group None: the whole set)."""
    merged: dict = {}
    results = ds.map_batches(block_sketches, fn_kwargs={"plan": plan}, batch_format="pyarrow", batch_size=None)
    for batch in results.iter_batches(batch_format="pyarrow", batch_size=None):
        for group, column, blob in zip(*(batch[c].to_pylist() for c in ("group", "column", "sketch"))):
            quantiles.merge(merged, (group, column), blob, plan.sketch_k)
        groups = sum(1 for g, _ in merged if g is not None)
        if groups > max_groups:
            raise UniqaError(f"group_by {plan.group_by!r} gives more than max_groups={max_groups} groups; group by "
                             "a coarser column, or raise max_groups (--set max_groups=N)")
    return merged


def filter_block(batch: pa.Table, plan: Plan, kept_out: str, rejected_out: str, kept_schema: TableSchema,
                 rejected_schema: TableSchema) -> pa.Table:
    """Decide one block, write its kept and rejected rows; returns one row: ``rows`` and ``stats`` (JSON)."""
    kept, rejected, stats = split(batch, plan)
    sink.write_batch(kept, kept_out, kept_schema)
    sink.write_batch(rejected, rejected_out, rejected_schema)
    return pa.table({"rows": [len(batch)], "stats": [json.dumps(stats)]})


def filter_pass(ds, plan: Plan, kept_out: str, rejected_out: str, schemas: tuple[TableSchema, TableSchema],
                total: int | None, progress: bool) -> dict:
    """Run the decisions; returns the summed counts (kept, rejected, errors, by_reason, hist)."""
    from tqdm import tqdm

    results = ds.map_batches(filter_block, batch_format="pyarrow", batch_size=None, fn_kwargs={
        "plan": plan, "kept_out": kept_out, "rejected_out": rejected_out, "kept_schema": schemas[0],
        "rejected_schema": schemas[1]})
    totals = {"kept": 0, "rejected": 0, "errors": 0, "by_reason": Counter(), "hist": {}}
    with tqdm(total=total, desc="filter", unit="img", disable=not progress) as bar:
        for batch in results.iter_batches(batch_format="pyarrow", batch_size=None):
            for rows, text in zip(batch["rows"].to_pylist(), batch["stats"].to_pylist()):
                add_stats(totals, json.loads(text))
                bar.update(rows)
    totals["by_reason"] = dict(sorted(totals["by_reason"].items()))
    return totals


def add_stats(totals: dict, stats: dict) -> None:
    for key in ("kept", "rejected", "errors"):
        totals[key] += stats[key]
    totals["by_reason"].update(stats["by_reason"])
    for column, counts in stats["hist"].items():
        if column in totals["hist"]:
            totals["hist"][column] = [[a + b for a, b in zip(x, y)] for x, y in zip(totals["hist"][column], counts)]
        else:
            totals["hist"][column] = counts
