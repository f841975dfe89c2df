"""CSIQ: ``csiq.DMOS.xlsx`` (the sheet of all distorted images: ``image, dst_idx, dst_type, dst_lev, dmos_std,
dmos``; DMOS 0-1, lower is better, flipped into ``mos_norm``); distorted images
``dst_imgs/<folder>/<image>.<TAG>.<level>.png`` (e.g. ``dst_imgs/awgn/1600.AWGN.1.png``). Rows are grouped by
reference image (``image``), so a reference never sits on both sides of a split.

Title rows above the header and sheets without the columns are skipped: the first sheet (or ``-o sheet=``)
whose first rows hold the columns is read."""

from __future__ import annotations

from uniqa import storage
from uniqa.data.sources.base import (
    Records,
    image_id,
    image_uri,
    opt_range,
    register_source,
    to_float,
)
from uniqa.data.sources.spaq import read_xlsx_rows
from uniqa.errors import UniqaError

HEADER_ROWS = 10  # rows searched for the header (the published sheet has title rows above it)

# dst_type as written in the sheet (lower case, spaces/'-'/'_' removed) -> (index, folder, file-name tag)
DISTORTIONS = {
    "noise": (1, "awgn", "AWGN"), "awgn": (1, "awgn", "AWGN"),
    "jpeg": (2, "jpeg", "JPEG"),
    "jpeg2000": (3, "jpeg2000", "jpeg2000"), "jp2k": (3, "jpeg2000", "jpeg2000"),
    "fnoise": (4, "fnoise", "fnoise"), "pinknoise": (4, "fnoise", "fnoise"),
    "blur": (5, "blur", "BLUR"),
    "contrast": (6, "contrast", "contrast"),
}


def distortion(value, uri: str, column: str, row: int) -> tuple[int, str, str]:
    key = "".join(ch for ch in str(value).lower() if ch not in " -_")
    if key not in DISTORTIONS:
        raise UniqaError(f"{uri}: row {row} column {column!r} has unknown distortion {value!r}; "
                         f"known: {sorted(DISTORTIONS)}")
    return DISTORTIONS[key]


def cell_text(value) -> str:
    """A name cell as text: ``1600`` and ``1600.0`` (numeric cells) -> ``"1600"``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return "" if value is None else str(value).strip()


@register_source(
    name="csiq",
    task="quality",
    mos_range=(0.0, 1.0),
    higher_is_better=False,
    description="CSIQ synthetic distortions IQA (DMOS 0-1, lower is better; grouped by reference)",
    options={
        "scores_file": "xlsx relative to root",
        "sheet": "worksheet name (default: the first sheet holding the columns)",
        "image_dir": "distorted-image folder relative to root",
        "image_ext": "image file extension",
        "image_column": "reference image name column",
        "type_column": "distortion type column (noise, jpeg, jpeg 2000, fnoise, blur, contrast)",
        "level_column": "distortion level column",
        "mos_column": "DMOS column",
        "std_column": "DMOS standard deviation column (optional, kept in attrs)",
        "mos_min": "lower end of the DMOS range (default 0)",
        "mos_max": "upper end of the DMOS range (default 1)",
    },
)
def read_csiq(
    root: str,
    scores_file: str = "csiq.DMOS.xlsx",
    sheet: str = "",
    image_dir: str = "dst_imgs",
    image_ext: str = ".png",
    image_column: str = "image",
    type_column: str = "dst_type",
    level_column: str = "dst_lev",
    mos_column: str = "dmos",
    std_column: str = "dmos_std",
    mos_min: str | float | None = None,
    mos_max: str | float | None = None,
) -> Records:
    uri = storage.join(root, scores_file)
    rows = read_xlsx_rows(uri, [image_column, type_column, level_column, mos_column], sheet, HEADER_ROWS)
    names, refs, mos, attrs = [], [], [], []
    for number, row in rows:
        ref = cell_text(row[image_column])
        if not ref:
            raise UniqaError(f"{uri}: row {number} column {image_column!r} is empty")
        index, folder, tag = distortion(row[type_column], uri, type_column, number)
        level = to_float(row[level_column], uri, level_column, number)
        if not level.is_integer():
            raise UniqaError(f"{uri}: row {number} column {level_column!r} has non-integer level {level:g}")
        names.append(f"{folder}/{ref}.{tag}.{int(level)}{image_ext}")
        refs.append(ref.lower())
        mos.append(to_float(row[mos_column], uri, mos_column, number))
        a = {"dist_type": float(index), "dist_level": level}
        if std_column and row.get(std_column) not in (None, ""):
            a["dmos_std"] = to_float(row[std_column], uri, std_column, number)
        attrs.append(a)
    return Records(
        image_id=[image_id("csiq", n) for n in names],
        image_uri=[image_uri(root, image_dir, n) for n in names],
        mos=mos,
        group=refs,
        attrs=attrs,
        mos_range=opt_range(mos_min, mos_max),
        image_dir=image_dir,
    )
