"""Image decoding that survives anything: local or ``s3://`` -> HxWx3 uint8 RGB, or an :class:`ImageError`.

Every mode becomes RGB (CMYK, L, LA, P with transparency, RGBA composited on white, 16-bit,
1-bit, the first frame of animations) with EXIF orientation applied. Large JPEGs are decoded at a
reduced scale (``Image.draft``) when the target is at most half their size. The decompression-bomb
limit is checked per call against the header, before any pixel is decoded; Pillow's global
``Image.MAX_IMAGE_PIXELS`` is never touched. :func:`uniqa.data.batches.decode_batch` is shaped for Ray Data
``map_batches`` and turns each bad row into an ``error`` string instead of failing the batch.

Decode size: a run's ``DecodeConfig.size`` resizes every image; without one, a manifest row's ``decode_size``
(:data:`DECODE_SIZE_COLUMN`, e.g. 448 for SPAQ, as the reference code) resizes that row's image, and a null keeps
it as stored (:func:`row_decode`). :func:`decode_key` names the sizes a run used (features and scores are keyed
by it).
"""

from __future__ import annotations

import io
import logging
import math
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageOps

from uniqa import storage
from uniqa.errors import UniqaError

log = logging.getLogger(__name__)

# The one list of image file suffixes (folders to prepare, folders and prefixes to score).
IMAGE_SUFFIXES = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jp2", ".avif",
)

# Raster formats we open. Deliberately excludes EPS/PDF-like formats that shell out to Ghostscript.
DEFAULT_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "AVIF", "JPEG2000", "PPM", "ICO")
_MAGIC = {
    b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"GIF8": "GIF", b"BM": "BMP", b"RIFF": "WEBP",
    b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"%!PS": "EPS", b"\xc5\xd0\xd3\xc6": "EPS", b"%PDF": "PDF",
}
_ORIENTATION = 0x0112  # EXIF tag
EMPTY_IMAGE = np.zeros((0, 0, 3), np.uint8)  # Ray-safe stand-in for a failed row's image (see batches.decode_batch)
_OPEN_ERRORS = (SyntaxError, IndexError, TypeError, ValueError, struct.error, EOFError, OSError)
DECODE_SIZE_COLUMN = "decode_size"  # manifest column: a row's shorter side before its views (null: as stored)


class ImageError(UniqaError):
    """An image that cannot be decoded. ``kind`` is a short tag: missing, empty, storage, not_image,
    unsupported, too_large, truncated, corrupt, decode."""

    def __init__(self, message: str, kind: str = "decode"):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class DecodeConfig:
    size: int | None = None  # target shorter side in pixels (None: keep the decoded size)
    max_pixels: int = 120_000_000  # decompression-bomb limit (width x height), checked per call
    draft: bool = True  # JPEG reduced-scale decode when the image is >= 2x the target size
    formats: tuple[str, ...] = DEFAULT_FORMATS  # Pillow format names we are willing to open

    def __post_init__(self):
        if self.size is not None and (not isinstance(self.size, int) or self.size < 1):
            raise UniqaError(f"DecodeConfig.size must be a positive int or None, got {self.size!r}")
        if not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise UniqaError(f"DecodeConfig.max_pixels must be a positive int, got {self.max_pixels!r}")
        Image.init()
        unknown = [f for f in self.formats if f.upper() not in Image.OPEN]
        if unknown or not self.formats:
            raise UniqaError(f"DecodeConfig.formats has unknown format {unknown}; known: {sorted(Image.OPEN)}")
        object.__setattr__(self, "formats", tuple(f.upper() for f in self.formats))


# ----------------------------------------------------------------------------------- decode size


def row_size(value) -> int | None:
    """A ``decode_size`` cell as Arrow or Ray hands it over (int, numpy int, float, NaN or None) -> int | None."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UniqaError(f"decode_size {value!r} is not a number of pixels") from None
    return None if math.isnan(number) else int(number)


def row_decode(cfg: DecodeConfig, value) -> DecodeConfig:
    """How one row is decoded: ``cfg`` when it sets a size (a run's size wins for every row) or the row's
    ``decode_size`` ``value`` is null, else ``cfg`` at the row's size."""
    size = None if cfg.size is not None else row_size(value)
    return cfg if size is None else replace(cfg, size=size)


def decode_key(size: int | None, row_sizes: Iterable = ()) -> str | None:
    """The decode sizes of a run as one string: ``size`` (the run's, for every row) when set, else the distinct
    ``row_sizes``; ascending, ``native`` for as stored (``"448"``, ``"448,native"``). None when every image is
    decoded as stored."""
    sizes = {size} if size is not None else {row_size(s) for s in row_sizes}
    resized = sorted(s for s in sizes if s is not None)
    if not resized:
        return None
    return ",".join([*map(str, resized), *(["native"] if None in sizes else [])])


def table_decode_sizes(table) -> list[int | None]:
    """The distinct ``decode_size`` values of a manifest table, ascending, None (as stored) last; ``[None]`` when it
    has no such column."""
    if DECODE_SIZE_COLUMN not in table.column_names:
        return [None]
    values = {row_size(v) for v in table[DECODE_SIZE_COLUMN].unique().to_pylist()}
    return [*sorted(v for v in values if v is not None), *([None] if None in values else [])]


def manifest_decode_sizes(files: list[str]) -> list[int | None]:
    """:func:`table_decode_sizes` of a manifest's files (only that column is read)."""
    from uniqa.tables import dataset_schema, read_columns

    if DECODE_SIZE_COLUMN not in dataset_schema(files).names:
        return [None]
    return table_decode_sizes(read_columns(files, [DECODE_SIZE_COLUMN]))


# ---------------------------------------------------------------------------------------- reading


def read_source(uri: str) -> bytes:
    """Bytes of a local path or ``s3://`` object; any failure is an :class:`ImageError` naming ``uri``."""
    try:
        return storage.read_bytes(uri)
    except FileNotFoundError:
        raise ImageError(f"{uri}: file not found", "missing") from None
    except (OSError, UniqaError) as e:
        if isinstance(e, IsADirectoryError) or "is a directory" in str(e).lower():
            raise ImageError(f"{uri}: is a directory, not an image file", "not_image") from None
        raise ImageError(f"{uri}: cannot read ({_one_line(e)})", "storage") from None


def load_image(source: str | bytes | os.PathLike, cfg: DecodeConfig = DecodeConfig()) -> np.ndarray:
    """Decode ``source`` (local path, ``s3://`` URI, or encoded bytes) to HxWx3 uint8 RGB.

    Raises :class:`ImageError` with a specific message naming the source on any failure."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_bytes(bytes(source), cfg, "<bytes>")
    uri = os.fspath(source)
    return decode_bytes(read_source(uri), cfg, uri)


def decode_bytes(data: bytes, cfg: DecodeConfig = DecodeConfig(), name: str = "<bytes>") -> np.ndarray:
    """Encoded image bytes -> HxWx3 uint8 RGB; ``name`` goes into error messages."""
    if len(data) == 0:
        raise ImageError(f"{name}: empty file (0 bytes)", "empty")
    im = _open(data, cfg.formats, name)
    fmt = im.format or "image"
    w, h = im.size
    if w * h > cfg.max_pixels:
        raise ImageError(
            f"{name}: {fmt} of {w}x{h} = {w * h} pixels exceeds the decompression-bomb limit "
            f"max_pixels={cfg.max_pixels}",
            "too_large",
        )
    try:
        if cfg.draft and cfg.size and fmt in ("JPEG", "MPO") and min(w, h) >= 2 * cfg.size:
            im.draft(None, _scaled(w, h, cfg.size))
        im.seek(0)
        im.load()
        im = _orient(im, name)
        rgb = _to_rgb(im)
        if cfg.size:
            rgb = rgb.resize(_scaled(*rgb.size, cfg.size), Image.Resampling.BICUBIC)
        return np.asarray(rgb, dtype=np.uint8).copy()
    except ImageError:
        raise
    except Exception as e:  # decoders raise OSError, SyntaxError, struct.error, ...: all mean "bad data"
        raise _decode_error(e, fmt, name) from None


def _open(data: bytes, formats: tuple[str, ...], name: str) -> Image.Image:
    """``Image.open`` restricted to ``formats``, without Pillow's global bomb check (ours is per call);
    a format whose signature matched but whose header failed reports that failure."""
    Image.init()
    fp, prefix = io.BytesIO(data), data[:16]
    failure: tuple[str, Exception] | None = None
    for fmt in formats:
        factory, accept = Image.OPEN[fmt]
        verdict = accept(prefix) if accept else True
        if isinstance(verdict, str):  # recognised but unsupported by this Pillow build
            failure = failure or (fmt, OSError(verdict))
        if not verdict or isinstance(verdict, str):
            continue
        fp.seek(0)
        try:
            return factory(fp, "")
        except _OPEN_ERRORS as e:
            failure = failure or (fmt, e)
    if failure:
        raise _decode_error(failure[1], failure[0], name)
    magic = next((f for sig, f in _MAGIC.items() if data.startswith(sig)), None)
    if magic and magic in formats:
        raise ImageError(f"{name}: corrupt {magic} header (format signature found, header unreadable)", "corrupt")
    if magic:
        raise ImageError(f"{name}: unsupported image format {magic} (allowed: {', '.join(formats)})", "unsupported")
    raise ImageError(f"{name}: not an image file (unrecognised format, starts with {data[:8]!r})", "not_image")


def _decode_error(e: Exception, fmt: str, name: str) -> ImageError:
    msg = _one_line(e)
    low = msg.lower()
    if isinstance(e, EOFError) or "truncated" in low or "end of file" in low or "premature end" in low:
        return ImageError(f"{name}: truncated {fmt} data ({msg})", "truncated")
    if "checksum" in low or "crc" in low:
        return ImageError(f"{name}: corrupt {fmt} data, bad CRC checksum ({msg})", "corrupt")
    if isinstance(e, SyntaxError) or "broken" in low or "corrupt" in low:
        return ImageError(f"{name}: corrupt {fmt} data ({msg})", "corrupt")
    return ImageError(f"{name}: cannot decode {fmt} data ({type(e).__name__}: {msg})", "decode")


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# ------------------------------------------------------------------------------------ conversion


def _scaled(w: int, h: int, size: int) -> tuple[int, int]:
    """(w, h) scaled so that the shorter side equals ``size``."""
    if w <= h:
        return size, max(1, round(h * size / w))
    return max(1, round(w * size / h)), size


def _orient(im: Image.Image, name: str) -> Image.Image:
    """Apply the EXIF orientation tag; unreadable EXIF keeps the stored orientation (logged)."""
    try:
        if im.getexif().get(_ORIENTATION, 1) in (0, 1):
            return im  # exif_transpose would copy the whole image for nothing
        return ImageOps.exif_transpose(im)
    except Exception as e:  # a broken EXIF block should not cost the pixels
        log.warning("%s: ignoring unreadable EXIF orientation (%s)", name, _one_line(e))
        return im


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is composited on white, 16-bit/32-bit scaled to 8-bit."""
    mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", im.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_wide_to_uint8(np.asarray(im), mode)).convert("RGB")
    return im.convert("RGB") if mode != "RGB" else im


def _wide_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """16-bit (I;16*) and 32-bit int (I, assumed 16-bit range) -> 0..255; float (F): [0, 1] if max <= 1."""
    a = arr.astype(np.float64)
    if mode == "F":
        a = a * 255.0 if np.nanmax(a) <= 1.0 else a
        return np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8)
    return np.clip(a / 257.0, 0, 255).round().astype(np.uint8)


def to_jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    """HxWx3 (or HxW) uint8 array -> baseline JPEG bytes (for captioners that send images to an MLLM)."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ImageError(f"to_jpeg_bytes expects an HxWx3 uint8 array, got shape {arr.shape} dtype {arr.dtype}")
    if not 1 <= quality <= 100:
        raise ImageError(f"JPEG quality must be in 1..100, got {quality}")
    buf = io.BytesIO()
    Image.fromarray(arr).convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


