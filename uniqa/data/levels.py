"""MOS normalisation, the five level words (METHOD §1) and seeded, group-aware splits."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from uniqa.errors import UniqaError
from uniqa.schema import LEVELS, NUM_SPLITS, SPLIT_COLUMNS

BINNINGS = ("equal", "quantile")


def normalise(
    mos: np.ndarray, lo: float, hi: float, higher_is_better: bool = True, names: Sequence[str] | None = None
) -> np.ndarray:
    """Min-max over the published range [lo, hi] -> [0, 1], flipped where lower is better.

    NaN marks an unlabelled image and stays NaN. A score outside the published range is an error
    naming the value and the image (``names``) or row: a wrong range or column."""
    mos = np.asarray(mos, dtype=np.float64)
    if not hi > lo:
        raise UniqaError(f"MOS range must have hi > lo, got lo={lo}, hi={hi}")
    tol = 1e-9 * (hi - lo)
    outside = (mos < lo - tol) | (mos > hi + tol)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        where = f"image {names[i]!r}" if names is not None else f"row {i}"
        raise UniqaError(f"MOS {mos[i]:g} of {where} is outside the dataset's range [{lo:g}, {hi:g}]")
    norm = np.clip((mos - lo) / (hi - lo), 0.0, 1.0)
    return norm if higher_is_better else 1.0 - norm


def level_edges(mos_norm: np.ndarray, binning: str = "equal") -> np.ndarray:
    """The four inner bin edges: equal width (0.2, 0.4, 0.6, 0.8) or the labelled data's quintiles."""
    if binning == "equal":
        return np.array([0.2, 0.4, 0.6, 0.8])
    if binning == "quantile":
        values = np.asarray(mos_norm, dtype=np.float64)
        values = values[~np.isnan(values)]
        if values.size == 0:
            raise UniqaError("quantile level bins need at least one labelled image")
        return np.quantile(values, [0.2, 0.4, 0.6, 0.8])
    raise UniqaError(f"unknown level binning {binning!r}; valid: {list(BINNINGS)}")


def observed_span(mos_norm: np.ndarray) -> tuple[float, float] | None:
    """(min, max) of the labelled values; ``None`` when there are none or all are equal (nothing to rescale)."""
    values = np.asarray(mos_norm, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0 or values.min() == values.max():
        return None
    return float(values.min()), float(values.max())


def levels(mos_norm: np.ndarray, binning: str = "equal", span: tuple[float, float] | None = None) -> list[str | None]:
    """bad [0, .2), poor [.2, .4), fair [.4, .6), good [.6, .8), perfect [.8, 1] (equal binning);
    ``None`` for unlabelled (NaN) entries. Values are rounded to 1e-9 first, so a MOS that sits on an
    edge in decimal (KADID 1.8 -> 0.19999999999999998) lands in the upper bin as written.

    ``span=(lo, hi)`` bins over that part of [0, 1] instead (values rescaled to ``(v - lo) / (hi - lo)``
    first): with :func:`observed_span` the words cover the observed range (TID2013, METHOD §6). Quantile
    bins do not change under rescaling."""
    mos_norm = np.asarray(mos_norm, dtype=np.float64)
    if np.isnan(mos_norm).all():
        return [None] * len(mos_norm)
    if span is not None:
        lo, hi = span
        if not hi > lo:
            raise UniqaError(f"level span must have hi > lo, got lo={lo}, hi={hi}")
        mos_norm = np.clip((mos_norm - lo) / (hi - lo), 0.0, 1.0)
    edges = level_edges(mos_norm, binning)
    idx = np.searchsorted(np.round(edges, 9), np.round(mos_norm, 9), side="right")
    return [None if np.isnan(v) else LEVELS[i] for v, i in zip(mos_norm, idx)]


def level_index(level: str) -> int:
    try:
        return LEVELS.index(level)
    except ValueError:
        raise UniqaError(f"unknown level {level!r}; valid: {list(LEVELS)}") from None


def seeded_splits(
    groups: list[str], train_fraction: float = 0.8, seed: int = 0, num_splits: int = NUM_SPLITS
) -> dict[str, list[str]]:
    """``split_0 .. split_{n-1}``: seeded train/test assignments of whole groups.

    Groups are content groups (e.g. the reference image of a synthetic-distortion dataset), so a
    reference never appears on both sides. Split ``i`` permutes the sorted unique groups with
    ``default_rng(seed + i)`` and puts the first ``floor(train_fraction * n_groups)`` in train (the reference code's
    ``int()``: KADID-10k's 81 references give 64 train, 17 test)."""
    if not 0.0 < train_fraction < 1.0:
        raise UniqaError(f"train_fraction must be in (0, 1), got {train_fraction}")
    unique = sorted(set(groups))
    n_train = math.floor(train_fraction * len(unique) + 1e-9)  # + 1e-9: 0.8 x 40 is 32, not 31.999...
    out = {}
    for i in range(num_splits):
        order = np.random.default_rng(seed + i).permutation(len(unique))
        train = {unique[j] for j in order[:n_train]}
        out[SPLIT_COLUMNS[i]] = ["train" if g in train else "test" for g in groups]
    return out


def official_splits(split: list[str], num_splits: int = NUM_SPLITS) -> dict[str, list[str]]:
    """The dataset's own split copied into every split column."""
    return {SPLIT_COLUMNS[i]: list(split) for i in range(num_splits)}
