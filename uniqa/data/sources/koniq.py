"""KonIQ-10k: ``koniq10k_scores_and_distributions.csv`` (MOS 1-5); images under ``512x384/`` (what the reference
code trains and tests on: a 224 crop then covers a quarter of the image) or ``1024x768/``, whichever is there,
``512x384/`` first. ``-o image_dir=...`` overrides; the summary says which folder was used."""

from __future__ import annotations

from uniqa.data.sources.base import Records, csv_records, find_image_dir, register_source

ATTR_COLUMNS = ("SD", "MOS_zscore", "c1", "c2", "c3", "c4", "c5", "c_total")
IMAGE_DIRS = ("512x384", "1024x768")  # published folders, in order of preference


@register_source(
    name="koniq10k",
    task="quality",
    mos_range=(1.0, 5.0),
    description="KonIQ-10k in-the-wild IQA (MOS 1-5; images 512x384/, else 1024x768/)",
    options={
        "scores_file": "CSV relative to root (default koniq10k_scores_and_distributions.csv)",
        "image_dir": "image folder relative to root (default: 512x384 if present, else 1024x768)",
        "name_column": "default image_name",
        "mos_column": "default MOS",
    },
)
def read_koniq(
    root: str,
    scores_file: str = "koniq10k_scores_and_distributions.csv",
    image_dir: str = "",
    name_column: str = "image_name",
    mos_column: str = "MOS",
) -> Records:
    folder = find_image_dir("koniq10k", root, IMAGE_DIRS, image_dir)
    return csv_records("koniq10k", root, scores_file, folder, name_column, mos_column, ATTR_COLUMNS)
