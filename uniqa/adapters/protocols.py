"""The evaluation protocols as data (METHOD §4): which images train, select the epoch, and test, in each run.

Every run is over the manifest's labelled rows (``mos_norm`` not null), by position:

- ``full``: run ``split_i`` for each i in ``splits``: train = rows with ``split_i == "train"``, test = rows with
  ``"test"``. The splits are the manifest's (seeded 80/20 by content group, or the dataset's official one).
- ``few-label``: run ``n{N}-seed{j}`` for each size N and seed j: N images drawn from ``split_{j % 10}``'s train
  side with ``default_rng([seed, 2, N, j])``, tested on that split's test side (so a content group never
  trains and tests).
- ``zero-shot``: run ``split_i``: no training, the test side of ``split_i``; with ``zero_shot_images="all"``, one
  run ``all`` over every labelled row (split -1: no split column is read).

Clean number: the epoch is chosen on a validation part carved from the training images: the manifest's ``val``
rows of the split when it has any, else ``ceil(val_fraction * groups)`` whole content groups (at least one),
extended in the same random order until they hold ``val_min_images`` images (a SRCC over 5 images picks epochs by
chance), never all groups; drawn with ``default_rng([seed, 1, split])`` (full) or ``default_rng([seed, 3, N, j])``
(few-label).
Each run's training seed is ``run_seed(seed, name)``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from uniqa.errors import UniqaError

MIN_TEST = 3  # a correlation needs three points


@dataclass(frozen=True)
class RunPlan:
    name: str  # split_3 | n50-seed0
    protocol: str
    split: int  # the manifest split column used (-1: none, zero-shot over all images)
    labels: int  # labelled training images (full: the whole train side)
    few_seed: int | None
    train: np.ndarray  # positions of the training images (reference-style run)
    val: np.ndarray  # positions held out of ``train`` for the clean run's epoch choice
    test: np.ndarray
    seed: int  # torch / shuffling seed of the run

    @property
    def clean_train(self) -> np.ndarray:
        return np.setdiff1d(self.train, self.val)


def run_seed(seed: int, name: str) -> int:
    """A stable 31-bit seed of one run."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{name}".encode()).digest()[:4], "little") >> 1


def split_sides(splits: dict[str, np.ndarray], i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) positions of ``split_i`` (values train / val / test; null rows are in none)."""
    column = splits[f"split_{i}"]
    return tuple(np.flatnonzero(column == side) for side in ("train", "val", "test"))


def carve(positions: np.ndarray, groups: np.ndarray, fraction: float, rng: np.random.Generator,
          min_images: int = 0) -> np.ndarray:
    """Whole groups of ``positions`` held out for validation: ``ceil(fraction * groups)`` (at least one), then more
    groups in the same random order until they hold ``min_images`` images; never all groups."""
    unique, counts = np.unique(groups[positions], return_counts=True)
    if len(unique) < 2:
        return positions[:0]
    order = rng.permutation(len(unique))
    n = max(1, math.ceil(fraction * len(unique)))
    n = max(n, int(np.searchsorted(np.cumsum(counts[order]), min_images)) + 1)
    held = unique[order[: min(n, len(unique) - 1)]]
    return positions[np.isin(groups[positions], held)]


def plan_runs(protocol: str, splits: dict[str, np.ndarray], groups: np.ndarray, *, seed: int, split_ids, sizes,
              few_seeds, val_fraction: float, val_min_images: int = 0,
              zero_shot_images: str = "test") -> list[RunPlan]:
    """Every run of ``protocol`` over the labelled rows. ``splits``: split column -> values; ``groups``: content
    group of each row (its image_id when it has none). ``zero_shot_images``: test (each split's test side) | all
    (zero-shot only: one run over every labelled row, ``splits`` unused). Bad sizes raise one :class:`UniqaError`."""
    if zero_shot_images not in ("test", "all"):
        raise UniqaError(f"zero_shot_images must be one of ['test', 'all'], got {zero_shot_images!r}")
    if zero_shot_images == "all":
        if protocol != "zero-shot":
            raise UniqaError(f"zero_shot_images=all applies to protocol zero-shot, got protocol {protocol}")
        return [_all_images(groups, seed)]
    if protocol in ("full", "zero-shot"):
        return [_split_run(protocol, splits, groups, i, seed, val_fraction, val_min_images) for i in split_ids]
    runs = []
    for n in sizes:
        for j in few_seeds:
            i = j % 10
            train_side, _, test = split_sides(splits, i)
            _check_sides(f"split_{i}", train_side, test)
            if len(train_side) < n:
                raise UniqaError(f"few-label size {n} needs {n} labelled training images, but split_{i} has only "
                                 f"{len(train_side)}; use smaller few_label_sizes")
            train = np.sort(np.random.default_rng([seed, 2, n, j]).choice(train_side, n, replace=False))
            val = carve(train, groups, val_fraction, np.random.default_rng([seed, 3, n, j]), val_min_images)
            name = f"n{n}-seed{j}"
            runs.append(RunPlan(name, protocol, i, n, j, train, val, test, run_seed(seed, f"{protocol}/{name}")))
    return runs


def _split_run(protocol: str, splits: dict[str, np.ndarray], groups: np.ndarray, i: int, seed: int,
               val_fraction: float, val_min_images: int) -> RunPlan:
    """Run ``split_i`` of the full or zero-shot protocol."""
    train, val, test = split_sides(splits, i)
    _check_sides(f"split_{i}", train, test, trains=protocol == "full")
    if not len(val) and protocol == "full":
        val = carve(train, groups, val_fraction, np.random.default_rng([seed, 1, i]), val_min_images)
    name = f"split_{i}"
    return RunPlan(name, protocol, i, len(train), None, train, val, test, run_seed(seed, f"{protocol}/{name}"))


def _all_images(groups: np.ndarray, seed: int) -> RunPlan:
    """The zero-shot run ``all``: every labelled row tested, none trained."""
    if len(groups) < MIN_TEST:
        raise UniqaError(f"the manifest has {len(groups)} labelled images; a correlation needs at least {MIN_TEST}")
    none, every = np.arange(0), np.arange(len(groups))
    return RunPlan("all", "zero-shot", -1, 0, None, none, none, every, run_seed(seed, "zero-shot/all"))


def _check_sides(name: str, train: np.ndarray, test: np.ndarray, trains: bool = True) -> None:
    """Enough test images for a correlation, and (``trains``: not zero-shot) training images."""
    if len(test) < MIN_TEST:
        raise UniqaError(f"{name} has {len(test)} labelled test images; a correlation needs at least {MIN_TEST}")
    if trains and len(train) < 2:
        raise UniqaError(f"{name} has {len(train)} labelled training images; nothing to train on")
