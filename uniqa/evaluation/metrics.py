"""IQA correlation metrics: SRCC, PLCC, KRCC and PLCC after the standard 4-parameter logistic fit.

All take (pred, mos) sequences of equal length >= 3 with no NaN and neither side constant;
otherwise :class:`UniqaError` says which condition failed.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import optimize, special, stats

from uniqa.errors import UniqaError

MIN_POINTS = 3


def _check(pred, mos) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64).ravel()
    mos = np.asarray(mos, dtype=np.float64).ravel()
    if pred.shape != mos.shape:
        raise UniqaError(f"predictions ({pred.size}) and MOS ({mos.size}) differ in length")
    if pred.size < MIN_POINTS:
        raise UniqaError(f"need at least {MIN_POINTS} points for a correlation, got {pred.size}")
    for name, x in (("predictions", pred), ("MOS", mos)):
        if not np.isfinite(x).all():
            raise UniqaError(f"{name} contain NaN or inf at index {int(np.flatnonzero(~np.isfinite(x))[0])}")
        if np.ptp(x) == 0:
            raise UniqaError(f"{name} are constant ({x[0]}): correlation is undefined")
    return pred, mos


def srcc(pred, mos) -> float:
    """Spearman rank-order correlation."""
    pred, mos = _check(pred, mos)
    return float(stats.spearmanr(pred, mos).statistic)


def plcc(pred, mos) -> float:
    """Pearson linear correlation on raw predictions (the UniQA reference protocol)."""
    pred, mos = _check(pred, mos)
    return float(stats.pearsonr(pred, mos).statistic)


def krcc(pred, mos) -> float:
    """Kendall rank-order correlation (tau-b)."""
    pred, mos = _check(pred, mos)
    return float(stats.kendalltau(pred, mos).statistic)


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG 4-parameter logistic: ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``."""
    return (b1 - b2) * special.expit((np.asarray(x) - b3) / (np.abs(b4) + 1e-12)) + b2


def _logistic4_jac(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """Analytic Jacobian of :func:`logistic4`. Finite differences scale their step with the parameter,
    so a centre ``b3`` that starts at 0 (zero-mean predictions) would never move."""
    scale = np.abs(b4) + 1e-12
    s = special.expit((x - b3) / scale)
    ds = (b1 - b2) * s * (1.0 - s)
    return np.stack([s, 1.0 - s, -ds / scale, -ds * (x - b3) * np.sign(b4) / scale**2], axis=1)


def fit_logistic4(pred, mos) -> np.ndarray:
    """Least-squares fit of :func:`logistic4` mapping predictions onto MOS; returns (b1..b4)."""
    pred, mos = _check(pred, mos)
    p0 = [mos.max(), mos.min(), float(np.mean(pred)), float(np.std(pred))]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(logistic4, pred, mos, p0=p0, jac=_logistic4_jac, maxfev=20000)
    except RuntimeError as e:
        raise UniqaError(f"4-parameter logistic fit did not converge: {e}") from e
    return params


def plcc_logistic(pred, mos) -> float:
    """PLCC between MOS and predictions mapped through the fitted 4-parameter logistic."""
    pred, mos = _check(pred, mos)
    fitted = logistic4(pred, *fit_logistic4(pred, mos))
    if np.ptp(fitted) == 0:
        raise UniqaError("logistic fit collapsed to a constant: PLCC after fitting is undefined")
    return float(stats.pearsonr(fitted, mos).statistic)


def all_metrics(pred, mos) -> dict[str, float]:
    """SRCC, PLCC, KRCC and logistic-fitted PLCC in one dict."""
    return {"srcc": srcc(pred, mos), "plcc": plcc(pred, mos), "krcc": krcc(pred, mos),
            "plcc_logistic": plcc_logistic(pred, mos)}


METRICS = {"srcc": srcc, "plcc": plcc, "krcc": krcc}
WITH_INTERVAL = ("srcc", "plcc")  # metrics with a bootstrap interval: <name>_lo, <name>_hi
