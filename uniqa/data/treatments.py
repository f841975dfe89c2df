"""Aesthetic treatments of a photo (composition crops, colour grading, exposure) and AVA-style votes.

A treatment is a pure function ``(rgb uint8, subject (x, y) in [0, 1], rng) -> rgb uint8`` with a
base aesthetic score. :func:`vote_histogram` turns a treatment's score into AVA's ten vote counts
by the rule documented there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

Treat = Callable[[np.ndarray, tuple[float, float], np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Treatment:
    id: int
    name: str
    score: float  # base aesthetic mean on AVA's 1..10 scale
    spread: float  # standard deviation of the simulated voters' scores
    apply: Treat


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _crop(img: np.ndarray, cx: float, cy: float, cw: int, ch: int) -> np.ndarray:
    """``cw`` x ``ch`` window whose top-left is placed so that (cx, cy) px lands where asked, clamped inside."""
    h, w = img.shape[:2]
    x0 = int(np.clip(round(cx), 0, w - cw))
    y0 = int(np.clip(round(cy), 0, h - ch))
    return img[y0 : y0 + ch, x0 : x0 + cw]


def _subject_crop(img: np.ndarray, subject: tuple[float, float], at: tuple[float, float], frac: float) -> np.ndarray:
    """Crop of ``frac`` of each side, positioned so the subject sits at fraction ``at`` of the crop."""
    h, w = img.shape[:2]
    cw, ch = int(w * frac), int(h * frac)
    return _crop(img, subject[0] * w - at[0] * cw, subject[1] * h - at[1] * ch, cw, ch)


def _reachable(pos: float, frac: float, at: float) -> float:
    """How far (in crop fractions) the subject at image fraction ``pos`` ends up from ``at`` once the
    crop of size ``frac`` is clamped inside the image."""
    x0 = float(np.clip(pos - at * frac, 0.0, 1.0 - frac))
    return abs((pos - x0) / frac - at)


def thirds(img, subject, rng):
    """Subject on the rule-of-thirds intersection that a 70% crop can reach most exactly."""
    at = tuple(min((1 / 3, 2 / 3), key=lambda a, p=p: _reachable(p, 0.7, a)) for p in subject)
    return _subject_crop(img, subject, at, 0.7)


def centred_tilted(img, subject, rng):
    """Subject dead centre, horizon tilted 6-10 degrees, black wedges left in the corners."""
    crop = _subject_crop(img, subject, (0.5, 0.5), 0.7)
    angle = float(rng.uniform(6, 10)) * (1 if rng.random() < 0.5 else -1)
    return np.asarray(Image.fromarray(crop).rotate(angle, Image.Resampling.BICUBIC, fillcolor=(0, 0, 0)))


def edge_cut(img, subject, rng):
    """Subject jammed against a corner of a tight crop, half of it cut off."""
    at = (0.95 if subject[0] >= 0.5 else 0.05, 0.92 if subject[1] >= 0.5 else 0.08)
    return _subject_crop(img, subject, at, 0.45)


def _grade(img: np.ndarray, shadows: tuple, highlights: tuple, sat: float, curve: float) -> np.ndarray:
    """Split-tone grade: tint shadows/highlights by RGB offsets, scale saturation, S-curve strength."""
    x = img.astype(np.float64) / 255.0
    lum = (x @ np.array([0.299, 0.587, 0.114]))[..., None]
    x = lum + (x - lum) * sat
    x = x + (1 - lum) * np.array(shadows) + lum * np.array(highlights)
    x = np.clip(x, 0, 1)
    x = x + curve * (x - 0.5) * (1 - np.abs(2 * x - 1))  # S-curve, endpoints fixed
    return _u8(255 * x)


def harmonious(img, subject, rng):
    """Warm highlights, teal shadows, gentle contrast: the classic complementary grade."""
    return _grade(_subject_crop(img, subject, (0.5, 0.5), 0.9), (-0.03, 0.01, 0.04), (0.05, 0.02, -0.04), 1.1, 0.3)


def clashing(img, subject, rng):
    """Magenta shadows against acid-green highlights, oversaturated."""
    return _grade(_subject_crop(img, subject, (0.5, 0.5), 0.9), (0.18, -0.1, 0.2), (-0.1, 0.22, -0.15), 2.2, 0.0)


def muddy(img, subject, rng):
    """Under-exposed, lifted blacks, low contrast and a brown cast: flat and murky."""
    x = img.astype(np.float64) / 255.0
    x = 0.12 + 0.5 * x**1.6
    x = x * np.array([1.05, 0.97, 0.85])
    lum = (x @ np.array([0.299, 0.587, 0.114]))[..., None]
    return _u8(255 * (lum + (x - lum) * 0.55))


def well_exposed(img, subject, rng):
    """Levels stretched to the 1st-99th percentile plus a gentle S-curve."""
    x = img.astype(np.float64)
    lo, hi = np.percentile(x, [1, 99])
    x = np.clip((x - lo) / max(hi - lo, 1.0), 0, 1)
    return _u8(255 * (x + 0.25 * (x - 0.5) * (1 - np.abs(2 * x - 1))))


def mono_contrast(img, subject, rng):
    """Black and white with a strong contrast curve."""
    lum = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    lo, hi = np.percentile(lum, [2, 98])
    lum = np.clip((lum - lo) / max(hi - lo, 1e-3), 0, 1)
    lum = lum + 0.5 * (lum - 0.5) * (1 - np.abs(2 * lum - 1))
    return _u8(np.repeat(255 * lum[..., None], 3, axis=-1))


TREATMENTS: tuple[Treatment, ...] = (
    Treatment(1, "thirds", 6.6, 1.3, thirds),
    Treatment(2, "centred_tilted", 3.9, 1.6, centred_tilted),
    Treatment(3, "edge_cut", 3.5, 1.4, edge_cut),
    Treatment(4, "harmonious", 6.3, 1.3, harmonious),
    Treatment(5, "clashing", 3.3, 1.5, clashing),
    Treatment(6, "muddy", 3.1, 1.3, muddy),
    Treatment(7, "well_exposed", 6.0, 1.3, well_exposed),
    Treatment(8, "mono_contrast", 5.6, 1.8, mono_contrast),
)


def vote_histogram(mean: float, spread: float, voters: int, rng: np.random.Generator) -> list[int]:
    """AVA vote counts for scores 1..10:

        p_k ∝ exp(-(k - mean)^2 / (2 spread^2)),  k = 1..10;   counts ~ Multinomial(voters, p)

    so the vote-weighted mean lands near ``mean`` (pulled toward 5.5 near the ends of the scale)."""
    k = np.arange(1, 11)
    p = np.exp(-((k - mean) ** 2) / (2 * spread**2))
    return [int(c) for c in rng.multinomial(voters, p / p.sum())]
