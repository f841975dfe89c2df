"""``manifest``: an existing manifest (file or folder of shards, local or s3://), re-validated and rewritten;
``-o split=split_0 [-o side=test]`` keeps one side of a split (e.g. the held-out images to score)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from uniqa.data.sources.base import register_source
from uniqa.errors import UniqaError
from uniqa.schema import MANIFEST, SPLIT_COLUMNS
from uniqa.tables import read_table

SIDES = ("train", "val", "test")


@register_source(
    name="manifest",
    task=None,
    mos_range=None,
    description="an existing manifest (Parquet file or folder, local or s3://): validated and rewritten",
    options={
        "split": "keep only the rows on one side of this split column (split_0 .. split_9; default: every row)",
        "side": "the side kept with `split`: train, val or test",
    },
)
def read_manifest(root: str, split: str | None = None, side: str = "test") -> pa.Table:
    if split is not None and split not in SPLIT_COLUMNS:
        raise UniqaError(f"-o split={split!r} is not a split column; valid: {', '.join(SPLIT_COLUMNS)}")
    if side not in SIDES:
        raise UniqaError(f"-o side={side!r} is not a side; valid: {', '.join(SIDES)}")
    table = read_table(root, MANIFEST)
    if split is None:
        return table
    kept = table.filter(pc.fill_null(pc.equal(table[split], side), False))
    if kept.num_rows == 0:
        raise UniqaError(f"manifest {root} has no row on the {side!r} side of {split}")
    return kept
