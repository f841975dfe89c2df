"""Synthetic quality distortions at five levels, and the DMOS the sample corpus assigns them.

Each distortion is a pure function ``(rgb uint8 HxWx3, level 1..5, rng) -> rgb uint8`` whose
severity grows with the level. :func:`dmos` maps (distortion, level) to a KADID-style DMOS in
[1, 5] (higher is better) by the formula documented there.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage, signal

Distort = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Distortion:
    id: int  # KADID-style type id, used in file names I01_<id>_<level>.png
    name: str
    weight: float  # perceptual weight in (0, 1]: how bad level 5 is (see dmos)
    params: tuple[float, ...]  # the level 1..5 parameter
    apply: Distort


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def gaussian_blur(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return _u8(ndimage.gaussian_filter(img.astype(np.float32), sigma=(sigma, sigma, 0), mode="reflect"))


def line_kernel(length: int, angle_deg: float) -> np.ndarray:
    """A normalised ``length``-pixel line at ``angle_deg`` (odd square kernel)."""
    size = length if length % 2 else length + 1
    k = np.zeros((size, size), np.float64)
    c = size // 2
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length)
    a = np.deg2rad(angle_deg)
    xs = np.clip(np.round(c + t * np.cos(a)).astype(int), 0, size - 1)
    ys = np.clip(np.round(c - t * np.sin(a)).astype(int), 0, size - 1)
    np.add.at(k, (ys, xs), 1.0)
    return k / k.sum()


def motion_blur(img: np.ndarray, length: float, rng: np.random.Generator) -> np.ndarray:
    """Linear motion blur; the direction is drawn once per call from ``rng``."""
    k = line_kernel(int(length), float(rng.uniform(0, 180)))
    pad = k.shape[0] // 2
    x = np.pad(img.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    out = np.stack([signal.fftconvolve(x[..., c], k, mode="valid") for c in range(3)], axis=-1)
    return _u8(out)


def gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return _u8(img + rng.normal(0.0, sigma, img.shape))


def jpeg(img: np.ndarray, quality: float, rng: np.random.Generator) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def exposure(img: np.ndarray, gain: float, rng: np.random.Generator) -> np.ndarray:
    """Gain in linear light (sRGB gamma ~2.2): < 1 under-exposes, > 1 over-exposes and clips highlights.
    A per-value curve, so it is computed once for the 256 codes and applied as a lookup table."""
    linear = (np.arange(256) / 255.0) ** 2.2 * gain
    return _u8(255.0 * np.clip(linear, 0, 1) ** (1 / 2.2))[img]


def contrast(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float64)
    return _u8(x.mean() + (x - x.mean()) * factor)


def saturation(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float64)
    gray = (x @ np.array([0.299, 0.587, 0.114]))[..., None]
    return _u8(gray + (x - gray) * factor)


def pixelate(img: np.ndarray, block: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    b = int(block)
    small = Image.fromarray(img).resize((max(1, w // b), max(1, h // b)), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.NEAREST))


def impulse_noise(img: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise: ``fraction`` of the pixels set to black or white (all channels)."""
    out = img.copy()
    hit = rng.random(img.shape[:2]) < fraction
    out[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255)[:, None].astype(np.uint8)
    return out


def quantization(img: np.ndarray, levels: float, rng: np.random.Generator) -> np.ndarray:
    """Colour quantisation: each channel posterised to ``levels`` evenly spaced values (banding)."""
    step = 255.0 / (int(levels) - 1)
    return _u8(np.round(img / step) * step)


def chromatic_aberration(img: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    """Lateral chromatic aberration: red and blue shifted ``shift`` pixels apart (edge-replicated), a slight
    blur on the shifted channels as a real lens gives."""
    s = int(shift)
    x = img.astype(np.float32)
    pad = np.pad(x, ((0, 0), (s, s), (0, 0)), mode="edge")
    w = img.shape[1]
    out = x.copy()
    out[..., 0] = ndimage.gaussian_filter(pad[:, 2 * s : 2 * s + w, 0], 0.3 * s)
    out[..., 2] = ndimage.gaussian_filter(pad[:, 0:w, 2], 0.3 * s)
    return _u8(out)


DISTORTIONS: tuple[Distortion, ...] = (
    Distortion(1, "gaussian_blur", 1.0, (0.8, 1.5, 2.5, 4.0, 6.0), gaussian_blur),
    Distortion(2, "motion_blur", 1.0, (3, 7, 11, 17, 25), motion_blur),
    Distortion(3, "gaussian_noise", 0.95, (6, 12, 20, 32, 50), gaussian_noise),
    Distortion(4, "jpeg", 0.95, (50, 30, 18, 10, 4), jpeg),
    Distortion(5, "under_exposure", 0.9, (0.6, 0.38, 0.22, 0.12, 0.06), exposure),
    Distortion(6, "over_exposure", 0.9, (1.6, 2.4, 3.5, 5.0, 7.5), exposure),
    Distortion(7, "contrast_loss", 0.8, (0.7, 0.5, 0.35, 0.22, 0.12), contrast),
    Distortion(8, "saturation_loss", 0.6, (0.7, 0.5, 0.3, 0.15, 0.0), saturation),
    Distortion(9, "pixelation", 0.95, (2, 3, 5, 8, 12), pixelate),
    Distortion(10, "impulse_noise", 0.95, (0.005, 0.015, 0.04, 0.08, 0.15), impulse_noise),
    Distortion(11, "quantization", 0.75, (24, 12, 7, 5, 3), quantization),
    Distortion(12, "chromatic_aberration", 0.7, (1, 2, 3, 5, 7), chromatic_aberration),
)
LEVELS = (1, 2, 3, 4, 5)


def apply(d: Distortion, img: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
    """``img`` distorted by ``d`` at ``level`` (1 = mildest, 5 = worst)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return d.apply(img, d.params[level - 1], rng)


def severity(d: Distortion, level: int) -> float:
    """s = w_d * (0.15 + 0.85 * (level - 1) / 4), in [0.15 w_d, w_d]."""
    return d.weight * (0.15 + 0.85 * (level - 1) / 4)


def dmos(d: Distortion, level: int, jitter: float = 0.0) -> float:
    """KADID-style DMOS in [1, 5], higher is better:

        dmos = clip(5 - 4 * s + jitter, 1, 5),   s = severity(d, level)

    Successive levels differ by 0.85 * w_d >= 0.51 in ``5 - 4 s``, so with |jitter| <= 0.08 the
    DMOS is strictly decreasing in the level for every distortion."""
    return float(np.clip(5.0 - 4.0 * severity(d, level) + jitter, 1.0, 5.0))


def rating_variance(d: Distortion, level: int, extra: float = 0.0) -> float:
    """Simulated variance of the ratings: largest for mid severities, var = 0.3 + 1.2 s (1 - s) + extra."""
    s = severity(d, level)
    return 0.3 + 1.2 * s * (1 - s) + extra
