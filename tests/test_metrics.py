"""SRCC / PLCC / KRCC / logistic-fitted PLCC against hand-computed values, and their input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uniqa.errors import UniqaError
from uniqa.evaluation.metrics import all_metrics, fit_logistic4, krcc, logistic4, plcc, plcc_logistic, srcc

PRED = [1, 2, 3, 4, 5]
MOS = [2, 1, 4, 3, 5]


def test_srcc_by_hand():
    # rank differences d = (-1, 1, -1, 1, 0), sum d^2 = 4: rho = 1 - 6 * 4 / (5 * (25 - 1)) = 0.8
    assert srcc(PRED, MOS) == pytest.approx(0.8)
    assert srcc(PRED, PRED[::-1]) == pytest.approx(-1.0)
    # ties get average ranks: pred ranks (1, 2.5, 2.5, 4), mos ranks (1, 2, 3, 4) -> Pearson of the ranks
    assert srcc([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))


def test_krcc_by_hand():
    # of the 10 pairs, (2, 1) and (4, 3) are discordant: tau = (8 - 2) / 10
    assert krcc(PRED, MOS) == pytest.approx(0.6)


def test_plcc_by_hand():
    # deviations (-2, -1, 0, 1, 2) and (-3, -2, -1, 0, 6): 20 / sqrt(10 * 50) = 2 / sqrt(5)
    assert plcc(PRED, [1, 2, 3, 4, 10]) == pytest.approx(2 / math.sqrt(5))
    assert plcc(PRED, [3, 5, 7, 9, 11]) == pytest.approx(1.0)


def test_logistic_plcc_beats_raw_on_monotone_nonlinear_relation():
    pred = np.linspace(-3, 3, 40)
    mos = logistic4(pred, 5.0, 1.0, 0.5, 0.4)  # steep sigmoid of the prediction
    assert srcc(pred, mos) == pytest.approx(1.0)
    raw, fitted = plcc(pred, mos), plcc_logistic(pred, mos)
    assert raw < 0.95 and fitted > 0.999 and fitted >= raw
    b1, b2, b3, b4 = fit_logistic4(pred, mos)
    assert (b1, b2, b3, abs(b4)) == pytest.approx((5.0, 1.0, 0.5, 0.4), abs=1e-3)


def test_all_metrics_keys():
    out = all_metrics(PRED, [1, 2, 3, 4, 10])
    assert set(out) == {"srcc", "plcc", "krcc", "plcc_logistic"} and out["srcc"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "pred, mos, message",
    [
        ([1, 1, 1], [1, 2, 3], r"predictions are constant \(1.0\): correlation is undefined"),
        ([1, 2, 3], [4, 4, 4], r"MOS are constant \(4.0\)"),
        ([1, 2], [1, 2], r"need at least 3 points for a correlation, got 2"),
        ([1, 2, float("nan")], [1, 2, 3], r"predictions contain NaN or inf at index 2"),
        ([1, 2, 3], [1, float("inf"), 3], r"MOS contain NaN or inf at index 1"),
        ([1, 2, 3], [1, 2, 3, 4], r"predictions \(3\) and MOS \(4\) differ in length"),
    ],
)
def test_bad_input_errors(pred, mos, message):
    for metric in (srcc, plcc, krcc, plcc_logistic):
        with pytest.raises(UniqaError, match=message):
            metric(pred, mos)


# ---------------------------------------------------------------- cluster-bootstrap intervals


def _signal(n: int = 500, groups: int = 25, noise: float = 0.3, seed: int = 1):
    rng = np.random.default_rng(seed)
    mos = rng.random(n)
    return mos + rng.normal(0, noise, n), mos, np.array([f"ref{i % groups:02d}" for i in range(n)])


def test_bootstrap_config_checks():
    from uniqa.evaluation.config import BootstrapConfig

    assert BootstrapConfig() == BootstrapConfig(resamples=1000, seed=0, level=0.95, allow_few=False)
    with pytest.raises(UniqaError, match=r"resamples must be an integer >= 1000 \(fewer only with allow_few"):
        BootstrapConfig(resamples=999)
    assert BootstrapConfig(resamples=50, allow_few=True).resamples == 50
    for bad, message in (({"resamples": 0, "allow_few": True}, "got 0"), ({"seed": -1}, "seed must be"),
                         ({"level": 1.0}, r"level must be a number in \(0, 1\).*got 1.0")):
        with pytest.raises(UniqaError, match=message):
            BootstrapConfig(**bad)


def test_weighted_metrics_equal_the_metric_of_the_repeated_rows():
    from uniqa.evaluation.bootstrap import weighted

    rng = np.random.default_rng(0)
    pred, mos = np.round(rng.random(40), 1), np.round(rng.random(40), 1)  # many ties on both sides
    weights = rng.integers(0, 4, (5, 40)).astype(float)
    for name, fn in (("srcc", srcc), ("plcc", plcc)):
        got = weighted(name, pred, mos, weights)
        want = [fn(np.repeat(pred, w.astype(int)), np.repeat(mos, w.astype(int))) for w in weights]
        assert got == pytest.approx(want, abs=1e-12), name
    assert np.isnan(weighted("srcc", pred, mos, (np.arange(40) < 2).astype(float)))  # 2 rows: undefined


def test_bootstrap_is_seeded_and_contains_the_point_of_a_clear_signal():
    from uniqa.evaluation.bootstrap import intervals
    from uniqa.evaluation.config import BootstrapConfig

    pred, mos, groups = _signal()
    found = intervals(pred, mos, groups)
    assert found == intervals(pred, mos, groups)  # exact equality, every field
    assert found != intervals(pred, mos, groups, BootstrapConfig(seed=1))
    for name, fn in (("srcc", srcc), ("plcc", plcc)):
        iv = found[name]
        assert iv.point == fn(pred, mos) and iv.resamples == 1000 and iv.dropped == 0
        assert 0.5 < iv.lo < iv.point < iv.hi < 1.0 and iv.hi - iv.lo < 0.2, iv
    wider = intervals(pred, mos, groups, BootstrapConfig(level=0.99))["srcc"]
    assert wider.lo < found["srcc"].lo and wider.hi > found["srcc"].hi


def test_resamples_depend_on_the_seed_and_the_sorted_group_ids_only():
    from uniqa.evaluation.bootstrap import group_index, row_weights
    from uniqa.evaluation.config import BootstrapConfig

    cfg = BootstrapConfig(resamples=150, allow_few=True)
    _, _, groups = _signal(n=60, groups=6)
    order = np.random.default_rng(3).permutation(len(groups))
    first, shuffled = np.vstack(list(row_weights(groups, cfg))), np.vstack(list(row_weights(groups[order], cfg)))
    assert first.shape == (150, 60) and np.array_equal(first[:, order], shuffled)  # each row keeps its group's count
    ids, index = group_index(groups)
    assert list(ids) == sorted(set(groups)) and (first.sum(axis=1) == 60).all()  # equal groups of 10: 6 drawn
    assert all(len(set(first[k, index == g])) == 1 for k in range(150) for g in range(6))  # whole groups


def test_paired_intervals_use_the_same_resamples_for_both_predictions():
    from uniqa.evaluation.bootstrap import interval, paired_interval
    from uniqa.evaluation.config import BootstrapConfig

    pred, mos, groups = _signal()
    same = paired_interval(pred, pred.copy(), mos, groups)
    assert (same.point, same.lo, same.hi, same.dropped) == (0.0, 0.0, 0.0, 0)  # identical on every resample
    better = mos + np.random.default_rng(9).normal(0, 0.1, len(mos))
    gain = paired_interval(pred, better, mos, groups)
    assert gain.point == pytest.approx(srcc(better, mos) - srcc(pred, mos), abs=1e-12)
    assert 0 < gain.lo < gain.point < gain.hi
    a, b = interval(pred, mos, groups), interval(better, mos, groups)
    assert gain.hi - gain.lo < (a.hi - a.lo) + (b.hi - b.lo)  # pairing cancels the shared resampling noise
    assert paired_interval(better, pred, mos, groups).hi == pytest.approx(-gain.lo)  # a - b mirrors b - a
    few = BootstrapConfig(resamples=100, allow_few=True)
    assert paired_interval(pred, better, mos, groups, "plcc", few).resamples == 100


def test_groups_are_resampled_whole():
    from uniqa.evaluation.bootstrap import interval

    mos = np.linspace(0, 1, 20)
    one = mos + 0.3 * np.sin(9 * mos)  # an imperfect predictor of one reference's 20 images
    pred, labels = np.r_[one, one], np.r_[mos, mos]
    # two references whose rows are identical: every resample (AA, AB, BB) holds the same rows, scaled
    twins = interval(pred, labels, ["A"] * 20 + ["B"] * 20)
    assert twins.point < 0.95 and twins.lo == pytest.approx(twins.point) and twins.hi == pytest.approx(twins.point)
    as_images = interval(pred, labels, [f"i{k}" for k in range(40)])
    assert as_images.hi - as_images.lo > 0.05  # the same rows resampled one by one do vary
    # A ranks perfectly, B perfectly backwards: AA gives +1, BB gives -1, each in about a quarter of the resamples
    opposite = interval(np.r_[mos, -mos], np.r_[mos, mos], ["A"] * 20 + ["B"] * 20)
    assert (opposite.lo, opposite.hi) == (pytest.approx(-1.0), pytest.approx(1.0))


def test_undefined_resamples_are_dropped_and_counted():
    from uniqa.evaluation.bootstrap import draws, interval, paired_interval
    from uniqa.evaluation.config import BootstrapConfig

    cfg = BootstrapConfig()
    mos = np.linspace(0, 1, 10)
    pred = np.r_[np.zeros(5), np.ones(5)]  # constant within each group: a resample of one group has no SRCC
    found = interval(pred, mos, ["A"] * 5 + ["B"] * 5, "srcc", cfg)
    one_group = sum(int((c == 2).any(axis=1).sum()) for c in draws(2, cfg))
    assert found.dropped == one_group and found.resamples == 1000 - one_group and 350 < one_group < 650
    assert found.lo == found.hi == pytest.approx(found.point)  # AB resamples: all ten rows, equally weighted
    flat = interval(np.ones(10), mos, list("ABCDEFGHIJ"))
    assert (flat.point, flat.ci, flat.dropped) == (None, None, 1000)
    assert paired_interval(np.ones(2), np.ones(2), [0.1, 0.2], ["A", "B"]).ci is None  # too few rows


def test_bootstrap_units_follow_the_task():
    from uniqa.evaluation.bootstrap import bootstrap_units, unit_name

    units = bootstrap_units(["quality", "quality", "aesthetics", "quality"], ["r1", "r1", "g", None],
                            ["a", "b", "c", "d"])
    assert list(units) == ["r1", "r1", "c", "d"]  # quality: its reference; aesthetics: the image; no group: image
    assert list(bootstrap_units(["quality"], None, ["a"])) == ["a"]
    assert (unit_name("quality"), unit_name("aesthetics")) == ("group", "image")

