"""KonIQ-10k: ``koniq10k_scores_and_distributions.csv`` (MOS 1-5), images under ``1024x768/``."""

from __future__ import annotations

from uniqa.data.sources.base import Records, csv_records, register_source

ATTR_COLUMNS = ("SD", "MOS_zscore", "c1", "c2", "c3", "c4", "c5", "c_total")


@register_source(
    name="koniq10k",
    task="quality",
    mos_range=(1.0, 5.0),
    description="KonIQ-10k in-the-wild IQA (MOS 1-5)",
    options={
        "scores_file": "CSV relative to root (default koniq10k_scores_and_distributions.csv)",
        "image_dir": "image folder relative to root (default 1024x768; 512x384 for the small copy)",
        "name_column": "default image_name",
        "mos_column": "default MOS",
    },
)
def read_koniq(
    root: str,
    scores_file: str = "koniq10k_scores_and_distributions.csv",
    image_dir: str = "1024x768",
    name_column: str = "image_name",
    mos_column: str = "MOS",
) -> Records:
    return csv_records("koniq10k", root, scores_file, image_dir, name_column, mos_column, ATTR_COLUMNS)
