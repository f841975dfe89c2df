"""MOS normalisation, the five level words (METHOD §1) and seeded, group-aware splits."""

from __future__ import annotations

import numpy as np

from uniqa.errors import UniqaError
from uniqa.schema import LEVELS, NUM_SPLITS, SPLIT_COLUMNS

BINNINGS = ("equal", "quantile")


def normalise(mos: np.ndarray, lo: float, hi: float, higher_is_better: bool = True) -> np.ndarray:
    """Min-max over the published range [lo, hi] -> [0, 1], flipped where lower is better.

    A score outside the published range is an error naming the value (a wrong range or column)."""
    mos = np.asarray(mos, dtype=np.float64)
    if not hi > lo:
        raise UniqaError(f"MOS range must have hi > lo, got lo={lo}, hi={hi}")
    if np.isnan(mos).any():
        raise UniqaError(f"MOS contains NaN at row {int(np.flatnonzero(np.isnan(mos))[0])}")
    tol = 1e-9 * (hi - lo)
    outside = (mos < lo - tol) | (mos > hi + tol)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise UniqaError(f"MOS {mos[i]} at row {i} is outside the dataset's range [{lo}, {hi}]")
    norm = np.clip((mos - lo) / (hi - lo), 0.0, 1.0)
    return norm if higher_is_better else 1.0 - norm


def level_edges(mos_norm: np.ndarray, binning: str = "equal") -> np.ndarray:
    """The four inner bin edges: equal width (0.2, 0.4, 0.6, 0.8) or the data's quintiles."""
    if binning == "equal":
        return np.array([0.2, 0.4, 0.6, 0.8])
    if binning == "quantile":
        return np.quantile(np.asarray(mos_norm, dtype=np.float64), [0.2, 0.4, 0.6, 0.8])
    raise UniqaError(f"unknown level binning {binning!r}; valid: {list(BINNINGS)}")


def levels(mos_norm: np.ndarray, binning: str = "equal") -> list[str]:
    """bad [0, .2), poor [.2, .4), fair [.4, .6), good [.6, .8), perfect [.8, 1] (equal binning)."""
    mos_norm = np.asarray(mos_norm, dtype=np.float64)
    idx = np.searchsorted(level_edges(mos_norm, binning), mos_norm, side="right")
    return [LEVELS[i] for i in idx]


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
    ``default_rng(seed + i)`` and puts the first ``round(train_fraction * n_groups)`` in train."""
    if not 0.0 < train_fraction < 1.0:
        raise UniqaError(f"train_fraction must be in (0, 1), got {train_fraction}")
    unique = sorted(set(groups))
    n_train = int(round(train_fraction * len(unique)))
    out = {}
    for i in range(num_splits):
        order = np.random.default_rng(seed + i).permutation(len(unique))
        train = {unique[j] for j in order[:n_train]}
        out[SPLIT_COLUMNS[i]] = ["train" if g in train else "test" for g in groups]
    return out


def official_splits(split: list[str], num_splits: int = NUM_SPLITS) -> dict[str, list[str]]:
    """The dataset's own split copied into every split column."""
    return {SPLIT_COLUMNS[i]: list(split) for i in range(num_splits)}
