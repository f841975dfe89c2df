"""``table``: a CSV or Parquet file of image path + score; relative paths resolve against the table's folder."""

from __future__ import annotations

import io
import os

import pyarrow as pa
import pyarrow.parquet as pq

from uniqa import storage
from uniqa.data.sources.base import (
    Records,
    image_id,
    opt_bool,
    opt_range,
    opt_task,
    parent,
    read_csv_rows,
    read_file,
    register_source,
    to_float,
)
from uniqa.data.sources.fields import split_name
from uniqa.errors import UniqaError


def read_table_rows(uri: str, required: list[str]) -> list[dict]:
    """Rows of a CSV or Parquet file (by extension) as dicts; a missing column names the file."""
    if not uri.lower().endswith((".parquet", ".pq")):
        return read_csv_rows(uri, required)
    try:
        table = pq.read_table(io.BytesIO(read_file(uri)))
    except (pa.ArrowException, OSError) as e:
        raise UniqaError(f"{uri}: not a readable Parquet file: {e}") from e
    for col in required:
        if col not in table.column_names:
            raise UniqaError(f"{uri}: expected column {col!r}, found columns {table.column_names}")
    return table.select(required).to_pylist()


def resolve_path(path: str, table_uri: str) -> str:
    """Absolute local paths and s3:// URIs stay; relative ones join the table's folder."""
    if storage.is_s3(path):
        return path
    uri = path if path.startswith("/") else storage.join(parent(table_uri), path)
    return uri if storage.is_s3(uri) else os.path.normpath(uri)


@register_source(
    name="table",
    task="quality",
    mos_range=None,
    description="a CSV/Parquet of image path + score (--root is the table file)",
    options={
        "path_column": "image path column; relative paths resolve against the table's folder",
        "score_column": "score column (empty: unlabelled)",
        "mos_min": "published lower end of the score range (default: the data's minimum)",
        "mos_max": "published upper end of the score range (default: the data's maximum)",
        "higher_is_better": "true, or false for DMOS-style scores",
        "task": "quality or aesthetics",
        "dataset": "dataset name written in the manifest and image ids",
        "group_column": "optional content-group column (splits never cut a group)",
        "split_column": "optional official split column (train/val/test)",
    },
)
def read_table_source(
    root: str,
    path_column: str = "path",
    score_column: str = "score",
    mos_min: str | float | None = None,
    mos_max: str | float | None = None,
    higher_is_better: str | bool = True,
    task: str = "quality",
    dataset: str = "table",
    group_column: str = "",
    split_column: str = "",
) -> Records:
    if storage.exists(root) and storage.is_dir(root):
        raise UniqaError(f"source 'table' expects --root to be a CSV or Parquet file, got the folder {root}")
    optional = [c for c in (score_column, group_column, split_column) if c]
    rows = read_table_rows(root, [path_column, *optional])
    paths = []
    for line, row in enumerate(rows, start=2):
        value = row[path_column]
        if value is None or not str(value).strip():
            raise UniqaError(f"{root}: row {line} column {path_column!r} is empty")
        paths.append(str(value).strip())
    return Records(
        image_id=[image_id(dataset, p) for p in paths],
        image_uri=[resolve_path(p, root) for p in paths],
        mos=[to_float(r[score_column], root, score_column, i + 2) if score_column else None
             for i, r in enumerate(rows)],
        group=[str(r[group_column]) for r in rows] if group_column else None,
        split=[split_name(r[split_column], f"{root}: row {i + 2}") for i, r in enumerate(rows)] if split_column
        else None,
        dataset=dataset,
        task=opt_task(task),
        mos_range=opt_range(mos_min, mos_max),
        higher_is_better=opt_bool("higher_is_better", higher_is_better),
        split_source=f"official (column {split_column})" if split_column else None,
    )
