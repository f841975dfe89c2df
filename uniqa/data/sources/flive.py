"""FLIVE / PaQ-2-PiQ: ``labels_image.csv`` (image-name column ``name``, ``mos`` 0-100); images under ``database/``."""

from __future__ import annotations

from uniqa import storage
from uniqa.data.sources.base import Records, image_id, image_uri, read_csv_rows, register_source, to_float
from uniqa.errors import UniqaError


@register_source(
    name="flive",
    task="quality",
    mos_range=(0.0, 100.0),
    description="FLIVE / PaQ-2-PiQ in-the-wild IQA (MOS 0-100)",
    options={
        "scores_file": "CSV relative to root (default labels_image.csv)",
        "image_dir": "image folder relative to root (default database)",
        "name_column": "default name",
        "mos_column": "default mos",
    },
)
def read_flive(
    root: str,
    scores_file: str = "labels_image.csv",
    image_dir: str = "database",
    name_column: str = "name",
    mos_column: str = "mos",
) -> Records:
    uri = storage.join(root, scores_file)
    rows = read_csv_rows(uri, [name_column, mos_column])
    names = [(r[name_column] or "").strip() for r in rows]
    if "" in names:
        raise UniqaError(f"{uri}: row {names.index('') + 2} column {name_column!r} is empty")
    return Records(
        image_id=[image_id("flive", n) for n in names],
        image_uri=[image_uri(root, image_dir, n) for n in names],
        mos=[to_float(r[mos_column], uri, mos_column, i + 2) for i, r in enumerate(rows)],
    )
