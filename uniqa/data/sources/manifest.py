"""``manifest``: an existing manifest (file or folder of shards, local or s3://), re-validated and rewritten."""

from __future__ import annotations

import pyarrow as pa

from uniqa.data.sources.base import register_source
from uniqa.schema import MANIFEST
from uniqa.tables import read_table


@register_source(
    name="manifest",
    task=None,
    mos_range=None,
    description="an existing manifest (Parquet file or folder, local or s3://): validated and rewritten",
    options={},
)
def read_manifest(root: str) -> pa.Table:
    return read_table(root, MANIFEST)
