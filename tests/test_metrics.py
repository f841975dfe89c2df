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
