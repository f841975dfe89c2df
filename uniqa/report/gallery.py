"""Image galleries: each cell a small embedded JPEG thumbnail (or, for an image that cannot be read, a
placeholder naming the error) with the facts and texts given for it."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from uniqa.errors import UniqaError
from uniqa.report.html import data_uri, esc

THUMB = 192  # longest side of a thumbnail, pixels
JPEG_QUALITY = 80


@dataclass(frozen=True)
class Cell:
    """One image: its id and URI, (label, already-formatted value) facts and (label, text) passages."""

    image_id: str
    uri: str | None
    facts: list[tuple[str, str]] = field(default_factory=list)
    texts: list[tuple[str, list[str]]] = field(default_factory=list)


def thumbnail(uri: str | None) -> str:
    """A ``data:image/jpeg;base64`` thumbnail of the image at ``uri``; :class:`UniqaError` when it cannot be read."""
    from PIL import Image

    from uniqa.data.images import DecodeConfig, load_image

    if not uri:
        raise UniqaError("no image_uri")
    im = Image.fromarray(load_image(uri, DecodeConfig(size=THUMB)))
    im.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=JPEG_QUALITY)
    return data_uri(buf.getvalue(), "image/jpeg")


def _picture(cell: Cell) -> str:
    try:
        return f'<img src="{thumbnail(cell.uri)}" alt="{esc(cell.image_id)}">'
    except UniqaError as e:  # ImageError is one: missing, truncated, not an image, ...
        return f'<div class="placeholder" data-image-error="{esc(cell.image_id)}">{esc(e)}</div>'


def render_cell(cell: Cell) -> str:
    facts = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in cell.facts)
    texts = ""
    for label, items in cell.texts:
        if len(items) == 1:
            texts += f'<p class="text"><b>{esc(label)}:</b> {esc(items[0])}</p>'
        elif items:
            listed = "".join(f"<li>{esc(t)}</li>" for t in items)
            texts += f'<div class="text"><b>{esc(label)}:</b><ul>{listed}</ul></div>'
    return f'<div class="cell">{_picture(cell)}<div class="id">{esc(cell.image_id)}</div><dl>{facts}</dl>{texts}</div>'


def render(cells: list[Cell]) -> str:
    return '<div class="gallery">' + "".join(render_cell(c) for c in cells) + "</div>"
