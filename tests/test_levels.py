"""MOS normalisation direction, the five level words at their bin edges, seeded group-aware splits."""

from __future__ import annotations

import numpy as np
import pytest

from uniqa.data.levels import (
    level_edges,
    level_index,
    levels,
    normalise,
    observed_span,
    official_splits,
    seeded_splits,
)
from uniqa.errors import UniqaError
from uniqa.schema import LEVELS, SPLIT_COLUMNS


def test_normalise_direction():
    np.testing.assert_allclose(normalise([1, 3, 5], 1, 5), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(normalise([1, 3, 5], 1, 5, higher_is_better=False), [1.0, 0.5, 0.0])
    np.testing.assert_allclose(normalise([0, 9, 4.5], 0, 9), [0.0, 1.0, 0.5])


def test_normalise_keeps_unlabelled_and_rejects_out_of_range():
    out = normalise([np.nan, 50.0], 0, 100)
    assert np.isnan(out[0]) and out[1] == 0.5
    with pytest.raises(UniqaError, match=r"MOS 101 of image 'spaq/9.jpg' is outside the dataset's range \[0, 100\]"):
        normalise([50, 101], 0, 100, names=["spaq/8.jpg", "spaq/9.jpg"])
    with pytest.raises(UniqaError, match=r"MOS -1 of row 0"):
        normalise([-1], 0, 100)
    with pytest.raises(UniqaError, match=r"hi > lo"):
        normalise([1], 5, 1)


def test_levels_at_bin_edges():
    values = [0.0, 0.1999, 0.2, 0.3999, 0.4, 0.6, 0.7999, 0.8, 1.0]
    assert levels(values) == ["bad", "bad", "poor", "poor", "fair", "good", "good", "perfect", "perfect"]
    # edges reached through float arithmetic land where the decimal value says: (1.8 - 1) / 4 == 0.19999...
    assert levels(normalise([1.8, 4.2, 3.4, 2.6], 1, 5)) == ["poor", "perfect", "good", "fair"]
    assert levels([np.nan, 0.5]) == [None, "fair"]


def test_levels_over_a_span():
    values = [0.0, 0.05, 0.3, 0.45, 0.6, 0.7, np.nan]  # labelled values fill 0 .. 0.7 of [0, 1]
    assert observed_span(values) == (0.0, 0.7)
    assert levels(values) == ["bad", "bad", "poor", "fair", "good", "good", None]  # no "perfect"
    # over the observed 0 .. 0.7: 0.3 -> 0.43 fair, 0.45 -> 0.64 good, 0.6 -> 0.86 perfect, 0.7 -> 1 perfect
    assert levels(values, span=observed_span(values)) == ["bad", "bad", "fair", "good", "perfect", "perfect", None]
    assert levels([0.1, 0.2, 0.3], span=(0.1, 0.3)) == ["bad", "fair", "perfect"]
    assert levels([0.1, 0.2, 0.3], span=(0.1, 0.3)) != levels([0.1, 0.2, 0.3])
    assert levels([0.1, 0.2, 0.3], "quantile", span=(0.1, 0.3)) == levels([0.1, 0.2, 0.3], "quantile")
    assert observed_span([0.5, 0.5]) is None and observed_span([np.nan]) is None
    with pytest.raises(UniqaError, match=r"level span must have hi > lo"):
        levels([0.5], span=(0.5, 0.5))


def test_quantile_levels_give_equal_bins():
    values = np.linspace(0.0, 0.5, 10)  # all in the lower half: equal bins use 3 words, quantile bins all 5
    assert set(levels(values)) == {"bad", "poor", "fair"}
    assert [levels(values, "quantile").count(w) for w in LEVELS] == [2, 2, 2, 2, 2]
    np.testing.assert_allclose(level_edges([0.0, 1.0, np.nan], "quantile"), [0.2, 0.4, 0.6, 0.8])
    with pytest.raises(UniqaError, match=r"unknown level binning 'log'; valid: \['equal', 'quantile'\]"):
        levels(values, "log")
    assert level_index("good") == 3
    with pytest.raises(UniqaError, match="unknown level 'great'"):
        level_index("great")


def test_seeded_splits_are_group_aware_80_20_and_deterministic():
    groups = [f"ref{i // 3}" for i in range(30)]  # 10 groups of 3 images
    splits = seeded_splits(groups, 0.8, seed=0)
    assert list(splits) == list(SPLIT_COLUMNS) and len(splits) == 10
    for col, assignment in splits.items():
        assert assignment.count("train") == 24 and assignment.count("test") == 6  # 8 of 10 groups
        sides = {}
        for g, s in zip(groups, assignment):
            sides.setdefault(g, set()).add(s)
        assert all(len(v) == 1 for v in sides.values()), col
    assert len({tuple(v) for v in splits.values()}) > 1  # the 10 splits differ
    assert seeded_splits(groups, 0.8, seed=0) == splits
    assert seeded_splits(groups, 0.8, seed=5) != splits
    assert seeded_splits(groups, 0.8, seed=5)["split_0"] == splits["split_5"]  # split i uses seed + i
    with pytest.raises(UniqaError, match="train_fraction must be in"):
        seeded_splits(groups, 1.0)


def test_official_splits_copied_to_every_column():
    out = official_splits(["train", "val", "test"])
    assert list(out) == list(SPLIT_COLUMNS) and all(v == ["train", "val", "test"] for v in out.values())


@pytest.mark.parametrize("groups, train", [(81, 64), (40, 32), (10, 8), (7, 5), (3, 2)])
def test_seeded_splits_floor_the_train_size_as_the_reference_code(groups, train):
    from uniqa.data.levels import seeded_splits

    names = [f"I{g:02d}" for g in range(groups)]
    for column, sides in seeded_splits(names).items():  # KADID-10k: 81 references -> 64 train, 17 test
        assert sides.count("train") == train and sides.count("test") == groups - train, column
