"""SPAQ: ``Annotations/MOS and Image attribute scores.xlsx`` (MOS and five attributes, 0-100),
images under ``TestImage/``. The manifest's ``decode_size`` is 448: the reference code (pyiqa's SPAQ dataset,
``augment: resize: 448``) resizes the ~12 MP photos to 448 px on the shorter side before cropping."""

from __future__ import annotations

import io
import zipfile

from uniqa import storage
from uniqa.data.sources.base import Records, image_id, image_uri, opt_size, read_file, register_source, to_float
from uniqa.errors import UniqaError

ATTR_COLUMNS = ("Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness")
DECODE_SIZE = 448  # pyiqa/default_dataset_configs.yml, spaq: augment: resize: 448


def read_xlsx_rows(uri: str, required: list[str], sheet: str = "", header_rows: int = 1) -> list[tuple[int, dict]]:
    """(spreadsheet row number, {header: value}) for every non-empty row of one sheet.

    The header is the first of the sheet's first ``header_rows`` rows that holds every ``required`` column
    (title rows above it are skipped). Without ``sheet``, the first sheet that has such a header is read."""
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    data = read_file(uri)
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as e:
        raise UniqaError(f"{uri}: not a readable .xlsx workbook: {e}") from e
    try:
        if sheet and sheet not in wb.sheetnames:
            raise UniqaError(f"{uri}: no sheet {sheet!r}; sheets: {wb.sheetnames}")
        best = (-1, [], "", 0)  # (required columns present, header, sheet, row) of the closest row
        for ws in [wb[sheet]] if sheet else wb.worksheets:
            rows = enumerate(ws.iter_rows(values_only=True), start=1)
            for number, values in rows:
                header = [str(h).strip() if h is not None else "" for h in values or ()]
                if all(col in header for col in required):
                    return [(n, dict(zip(header, v))) for n, v in rows
                            if v is not None and not all(x is None or str(x).strip() == "" for x in v)]
                present = sum(col in header for col in required)
                best = max(best, (present, header, ws.title, number), key=lambda b: b[0])
                if number >= header_rows:
                    break
        _, header, title, number = best
        missing = next(col for col in required if col not in header)
        where = f" (sheet {title!r}, row {number})" if len(wb.sheetnames) > 1 or number > 1 else ""
        raise UniqaError(f"{uri}: expected column {missing!r}, found columns {[h for h in header if h]}{where}")
    finally:
        wb.close()


@register_source(
    name="spaq",
    task="quality",
    mos_range=(0.0, 100.0),
    description="SPAQ smartphone photos IQA (MOS 0-100, five attribute scores)",
    options={
        "scores_file": "xlsx relative to root",
        "sheet": "worksheet name (default: the first sheet)",
        "image_dir": "image folder relative to root",
        "name_column": "image name column",
        "mos_column": "MOS column",
        "decode_size": "shorter side the images are resized to before their views (the reference's; none: as "
                       "stored)",
    },
)
def read_spaq(
    root: str,
    scores_file: str = "Annotations/MOS and Image attribute scores.xlsx",
    sheet: str = "",
    image_dir: str = "TestImage",
    name_column: str = "Image name",
    mos_column: str = "MOS",
    decode_size: str | int | None = DECODE_SIZE,
) -> Records:
    uri = storage.join(root, scores_file)
    rows = read_xlsx_rows(uri, [name_column, mos_column], sheet)
    names, mos, attrs = [], [], []
    for number, row in rows:
        name = row[name_column]
        if name is None or str(name).strip() == "":
            raise UniqaError(f"{uri}: row {number} column {name_column!r} is empty")
        names.append(str(name).strip())
        mos.append(to_float(row[mos_column], uri, mos_column, number))
        attrs.append({c: to_float(row[c], uri, c, number) for c in ATTR_COLUMNS if row.get(c) is not None})
    return Records(
        image_id=[image_id("spaq", n) for n in names],
        image_uri=[image_uri(root, image_dir, n) for n in names],
        mos=mos,
        attrs=attrs,
        image_dir=image_dir,
        decode_size=opt_size("decode_size", decode_size),
    )
