"""KonIQ-10k: ``koniq10k_scores_and_distributions.csv``; images under ``512x384/`` (what the reference code trains
and tests on: a 224 crop then covers a quarter of the image) or ``1024x768/``, whichever is there, ``512x384/``
first. ``-o image_dir=...`` overrides; the summary says which folder was used.

The label is ``MOS_zscore`` (0-100) by default: the column pyiqa's KonIQ meta file holds, which the official
UniQA code reads. ``-o mos_column=MOS`` reads the 1-5 MOS instead; the two rank the images differently."""

from __future__ import annotations

from dataclasses import replace

from uniqa.data.sources.base import Records, csv_records, find_image_dir, register_source

ATTR_COLUMNS = ("SD", "MOS", "MOS_zscore", "c1", "c2", "c3", "c4", "c5", "c_total")  # less the label column
IMAGE_DIRS = ("512x384", "1024x768")  # published folders, in order of preference
MOS_RANGES = {"MOS_zscore": (0.0, 100.0), "MOS": (1.0, 5.0)}  # published range of each label column


@register_source(
    name="koniq10k",
    task="quality",
    mos_range=MOS_RANGES["MOS_zscore"],
    description="KonIQ-10k in-the-wild IQA (MOS_zscore 0-100, or -o mos_column=MOS 1-5; images 512x384/, else "
                "1024x768/)",
    options={
        "scores_file": "CSV relative to root",
        "image_dir": "image folder relative to root (default: 512x384 if present, else 1024x768)",
        "name_column": "image name column",
        "mos_column": "score column: MOS_zscore is 0-100, as the official code reads it; MOS for the 1-5 scale",
    },
)
def read_koniq(
    root: str,
    scores_file: str = "koniq10k_scores_and_distributions.csv",
    image_dir: str = "",
    name_column: str = "image_name",
    mos_column: str = "MOS_zscore",
) -> Records:
    folder = find_image_dir("koniq10k", root, IMAGE_DIRS, image_dir)
    attrs = tuple(c for c in ATTR_COLUMNS if c != mos_column)
    records = csv_records("koniq10k", root, scores_file, folder, name_column, mos_column, attrs)
    return replace(records, mos_range=MOS_RANGES.get(mos_column))
