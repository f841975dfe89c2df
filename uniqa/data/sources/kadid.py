"""KADID-10k: ``dmos.csv`` (``dist_img, ref_img, dmos, var``; 1-5, higher is better), images under ``images/``.

Rows are grouped by reference image, so a reference never sits on both sides of a split."""

from __future__ import annotations

from uniqa import storage
from uniqa.data.sources.base import (
    Records,
    image_id,
    image_uri,
    optional_floats,
    read_csv_rows,
    register_source,
    to_float,
)
from uniqa.data.sources.fields import distortion_attrs
from uniqa.errors import UniqaError


@register_source(
    name="kadid10k",
    task="quality",
    mos_range=(1.0, 5.0),
    description="KADID-10k synthetic distortions IQA (DMOS 1-5, higher is better; grouped by reference)",
    options={
        "scores_file": "CSV relative to root",
        "image_dir": "image folder relative to root",
        "name_column": "distorted image name column",
        "ref_column": "reference image name column (the content group)",
        "mos_column": "DMOS column",
        "var_column": "score variance column (optional, kept in attrs)",
    },
)
def read_kadid(
    root: str,
    scores_file: str = "dmos.csv",
    image_dir: str = "images",
    name_column: str = "dist_img",
    ref_column: str = "ref_img",
    mos_column: str = "dmos",
    var_column: str = "var",
) -> Records:
    uri = storage.join(root, scores_file)
    rows = read_csv_rows(uri, [name_column, ref_column, mos_column])
    names, refs, mos, attrs = [], [], [], []
    for line, row in enumerate(rows, start=2):
        name, ref = row[name_column].strip(), (row[ref_column] or "").strip()
        if not name or not ref:
            raise UniqaError(f"{uri}: row {line} has an empty {name_column!r} or {ref_column!r}")
        names.append(name)
        refs.append(ref)
        mos.append(to_float(row[mos_column], uri, mos_column, line))
        a = optional_floats(row, (var_column,), uri, line)
        attrs.append({"var" if k == var_column else k: v for k, v in a.items()} | distortion_attrs(name)[1])
    return Records(
        image_id=[image_id("kadid10k", n) for n in names],
        image_uri=[image_uri(root, image_dir, n) for n in names],
        mos=mos,
        group=refs,
        attrs=attrs,
        image_dir=image_dir,
    )
