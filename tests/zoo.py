"""The bad-input zoo: image files of every awkward kind, generated into a folder at test time.

``build_zoo(root)`` writes the files and returns one :class:`ZooCase` per kind, saying what decoding
must give: ``"ok"`` plus a check on the decoded array, or the :class:`uniqa.data.images.ImageError`
``kind`` and a fragment of its message. ``good_images(root, n)`` writes plain JPEGs to mix in.
Reusable by any test that feeds images to a stage (decoding, scoring, captioning).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ZooCase:
    name: str
    uri: str
    expect: str  # "ok" or the expected ImageError.kind
    match: str = ""  # fragment the error message must contain
    check: Callable[[np.ndarray], None] | None = None  # assertions on the decoded RGB array

    @property
    def ok(self) -> bool:
        return self.expect == "ok"


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def huge_png_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG signature + IHDR claiming ``width`` x ``height`` and a tiny IDAT: decoding it
    would allocate tens of GB, so the header alone must be refused."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def huge_bmp_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A BMP file + info header claiming ``width`` x ``height`` at 24 bpp, with 64 bytes of pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    pixels = b"\x00" * 64
    header = struct.pack("<2sIHHI", b"BM", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    return header + info + pixels


def _halves(w: int = 40, h: int = 20, left=(255, 0, 0), right=(0, 0, 255)) -> Image.Image:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = left
    arr[:, w // 2 :] = right
    return Image.fromarray(arr)


def _near(pixel: np.ndarray, rgb: tuple[int, int, int], tol: int = 12) -> None:
    assert np.abs(pixel.astype(int) - np.array(rgb)).max() <= tol, f"pixel {pixel.tolist()} is not near {rgb}"


def _shape(h: int, w: int) -> Callable[[np.ndarray], None]:
    def check(a: np.ndarray) -> None:
        assert a.shape == (h, w, 3) and a.dtype == np.uint8, (a.shape, a.dtype)

    return check


def _all(*checks: Callable[[np.ndarray], None]) -> Callable[[np.ndarray], None]:
    def check(a: np.ndarray) -> None:
        for c in checks:
            c(a)

    return check


def _pixel(y: int, x: int, rgb: tuple[int, int, int], tol: int = 12) -> Callable[[np.ndarray], None]:
    return lambda a: _near(a[y, x], rgb, tol)


def _files(root: Path) -> dict[str, tuple[bytes | None, str, str, Callable | None]]:
    """name -> (file bytes or None for no file, file name, expectation, check or message fragment)."""
    red_blue = _halves()
    jpeg = _encode(red_blue, "JPEG", quality=95)
    png = _encode(red_blue, "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, display rotated 90 degrees clockwise
    gray16 = np.full((8, 10), 65535, np.uint16)
    gray16[:, 5:] = 32896  # 128 * 257
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, 5:, 3] = 255  # left half fully transparent -> white, right half opaque red
    la = np.zeros((10, 10, 2), np.uint8)
    la[..., 1] = 255
    la[:, :5, 1] = 0
    pal = Image.new("P", (10, 10), 1)
    pal.putpalette([0, 255, 0, 255, 0, 0] + [0] * 762)
    pal.paste(0, (0, 0, 5, 10))  # index 0 (green) is the transparent one
    bits = Image.new("1", (16, 8), 0)
    bits.paste(1, (8, 0, 16, 8))
    frames = [Image.new("RGB", (12, 12), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    bad_crc = bytearray(png)
    bad_crc[29:33] = bytes(b ^ 0xFF for b in bad_crc[29:33])  # the IHDR chunk's CRC
    return {
        "rgb_jpeg": (jpeg, "good.jpg", "ok", _all(_shape(20, 40), _pixel(10, 5, (255, 0, 0), 30))),
        "one_pixel": (_encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"), "one.png", "ok",
                      _all(_shape(1, 1), _pixel(0, 0, (10, 200, 30), 0))),
        "huge_png_header": (huge_png_header(), "huge.png", "too_large", "100000x100000"),
        "huge_bmp_header": (huge_bmp_header(), "huge.bmp", "too_large", "decompression-bomb"),
        "wrong_extension": (png, "actually_png.jpg", "ok", _all(_shape(20, 40), _pixel(10, 35, (0, 0, 255), 0))),
        "text_named_jpg": (b"hello, this is not a photo\n" * 4, "notes.jpg", "not_image", "not an image file"),
        "png_bad_crc": (bytes(bad_crc), "bad_crc.png", "corrupt", "CRC"),
        "unicode_space_path": (png, "dir with spaces/ünïcødé 写真 №1.png", "ok", _shape(20, 40)),
        "truncated_jpeg": (jpeg[: len(jpeg) // 2], "truncated.jpg", "truncated", "truncated JPEG"),
        "truncated_png": (png[: len(png) - 30], "truncated.png", "truncated", "truncated PNG"),
        "zero_byte": (b"", "empty.jpg", "empty", "empty file"),
        "missing_file": (None, "does_not_exist.jpg", "missing", "file not found"),
        "cmyk_jpeg": (_encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95), "cmyk.jpg",
                      "ok", _all(_shape(16, 16), _pixel(8, 8, (255, 0, 0), 20))),
        "png_16bit": (_encode(Image.fromarray(gray16), "PNG"), "gray16.png", "ok",
                      _all(_shape(8, 10), _pixel(4, 1, (255, 255, 255), 0), _pixel(4, 8, (128, 128, 128), 0))),
        "palette_transparency": (_encode(pal, "PNG", transparency=0), "palette.png", "ok",
                                 _all(_shape(10, 10), _pixel(5, 1, (255, 255, 255), 0), _pixel(5, 8, (255, 0, 0), 0))),
        "rgba_png": (_encode(Image.fromarray(rgba), "PNG"), "rgba.png", "ok",
                     _all(_pixel(5, 1, (255, 255, 255), 0), _pixel(5, 8, (255, 0, 0), 0))),
        "la_png": (_encode(Image.fromarray(la, "LA"), "PNG"), "la.png", "ok",
                   _all(_pixel(5, 1, (255, 255, 255), 0), _pixel(5, 8, (0, 0, 0), 0))),
        "exif_rotated_jpeg": (_encode(red_blue, "JPEG", quality=95, exif=exif), "rotated.jpg", "ok",
                              _all(_shape(40, 20), _pixel(3, 10, (255, 0, 0), 30), _pixel(36, 10, (0, 0, 255), 30))),
        "animated_gif": (gif.getvalue(), "animated.gif", "ok", _all(_shape(12, 12), _pixel(6, 6, (255, 0, 0), 0))),
        "one_bit": (_encode(bits, "PNG"), "bits.png", "ok",
                    _all(_shape(8, 16), _pixel(4, 2, (0, 0, 0), 0), _pixel(4, 12, (255, 255, 255), 0))),
        "grayscale_webp": (_encode(Image.new("L", (9, 7), 77), "WEBP", lossless=True), "gray.webp", "ok",
                           _all(_shape(7, 9), _pixel(3, 3, (77, 77, 77), 0))),
    }


def build_zoo(root: str | Path) -> list[ZooCase]:
    """Write every zoo file under ``root``; return the cases (``uri`` is the absolute local path)."""
    root = Path(root)
    cases = []
    for name, (data, filename, expect, extra) in _files(root).items():
        path = root / filename
        if data is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        check, match = (extra, "") if callable(extra) else (None, extra)
        cases.append(ZooCase(name, str(path.resolve()), expect, match, check))
    return cases


def good_images(root: str | Path, n: int, size: tuple[int, int] = (48, 32), seed: int = 0) -> list[str]:
    """``n`` ordinary RGB JPEGs (random smooth colours) under ``root``; returns their paths."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        base = rng.integers(0, 256, 3)
        arr = np.clip(base + rng.normal(0, 10, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
        path = root / f"good_{i:03d}.jpg"
        path.write_bytes(_encode(Image.fromarray(arr), "JPEG", quality=90))
        paths.append(str(path.resolve()))
    return paths
