"""FLIVE / PaQ-2-PiQ: ``labels_image.csv`` (image-name column ``name``, ``mos`` 0-100); images under ``database/``."""

from __future__ import annotations

from uniqa.data.sources.base import Records, csv_records, register_source


@register_source(
    name="flive",
    task="quality",
    mos_range=(0.0, 100.0),
    description="FLIVE / PaQ-2-PiQ in-the-wild IQA (MOS 0-100)",
    options={
        "scores_file": "CSV relative to root",
        "image_dir": "image folder relative to root",
        "name_column": "image name column",
        "mos_column": "MOS column",
    },
)
def read_flive(
    root: str,
    scores_file: str = "labels_image.csv",
    image_dir: str = "database",
    name_column: str = "name",
    mos_column: str = "mos",
) -> Records:
    return csv_records("flive", root, scores_file, image_dir, name_column, mos_column)
