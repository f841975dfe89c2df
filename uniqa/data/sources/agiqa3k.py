"""AGIQA-3K (AI-generated images, Li et al. 2023): the published ``data.csv`` (``name, prompt, adj1, adj2, style,
mos_quality, std_quality, mos_align, std_align``) with the images beside it. A zero-shot column of the UniQA
paper's Table 4. The label is ``mos_quality`` (perceptual quality) by default; ``-o mos_column=mos_align`` reads
text-image alignment instead. Normalised and binned over the observed range; the other score columns go to
``attrs``."""

from __future__ import annotations

from uniqa.data.sources.base import Records, csv_records, register_source

SCORE_COLUMNS = ("mos_quality", "std_quality", "mos_align", "std_align")


@register_source(
    name="agiqa3k",
    task="quality",
    mos_range=None,
    description="AGIQA-3K AI-generated image quality (mos_quality; -o mos_column=mos_align for alignment)",
    options={
        "scores_file": "CSV relative to root",
        "image_dir": "image folder relative to root (default: the root)",
        "name_column": "image name column",
        "mos_column": "score column (mos_align for text-image alignment)",
    },
)
def read_agiqa3k(
    root: str,
    scores_file: str = "data.csv",
    image_dir: str = "",
    name_column: str = "name",
    mos_column: str = "mos_quality",
) -> Records:
    attrs = tuple(c for c in SCORE_COLUMNS if c != mos_column)
    return csv_records("agiqa3k", root, scores_file, image_dir, name_column, mos_column, attrs)
