"""SPAQ: ``Annotations/MOS and Image attribute scores.xlsx`` (MOS and five attributes, 0-100),
images under ``TestImage/``."""

from __future__ import annotations

import io
import zipfile

from uniqa import storage
from uniqa.data.sources.base import Records, image_id, image_uri, read_file, register_source, to_float
from uniqa.errors import UniqaError

ATTR_COLUMNS = ("Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness")


def read_xlsx_rows(uri: str, required: list[str], sheet: str = "") -> list[tuple[int, dict]]:
    """(spreadsheet row number, {header: value}) for every non-empty row of one sheet."""
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
        rows = wb[sheet].iter_rows(values_only=True) if sheet else wb.worksheets[0].iter_rows(values_only=True)
        header = [str(h).strip() if h is not None else "" for h in next(rows, ())]
        for col in required:
            if col not in header:
                raise UniqaError(f"{uri}: expected column {col!r}, found columns {[h for h in header if h]}")
        out = []
        for number, values in enumerate(rows, start=2):
            if values is None or all(v is None or str(v).strip() == "" for v in values):
                continue
            out.append((number, dict(zip(header, values))))
        return out
    finally:
        wb.close()


@register_source(
    name="spaq",
    task="quality",
    mos_range=(0.0, 100.0),
    description="SPAQ smartphone photos IQA (MOS 0-100, five attribute scores)",
    options={
        "scores_file": "xlsx relative to root (default 'Annotations/MOS and Image attribute scores.xlsx')",
        "sheet": "worksheet name (default: the first sheet)",
        "image_dir": "image folder relative to root (default TestImage)",
        "name_column": "default 'Image name'",
        "mos_column": "default MOS",
    },
)
def read_spaq(
    root: str,
    scores_file: str = "Annotations/MOS and Image attribute scores.xlsx",
    sheet: str = "",
    image_dir: str = "TestImage",
    name_column: str = "Image name",
    mos_column: str = "MOS",
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
    )
