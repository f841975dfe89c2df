"""Cluster-bootstrap percentile intervals for SRCC and PLCC, and paired intervals of a difference between two
predictions of the same rows (numpy only; no Ray).

Resampling unit: whole groups are drawn with replacement and every row of a drawn group is taken (a group drawn
twice counts twice). :func:`bootstrap_units` gives each row its group by the manifest's ``task``: ``quality``
(IQA) rows resample by ``group`` (the reference image: the distorted versions of one reference are not
independent), ``aesthetics`` (IAA) rows by ``image_id`` (each image its own group).

The resamples are a function of (seed, the sorted group ids) only, so two predictions scored on the same rows get
the same resamples: their intervals are paired. A resample is a vector of per-row frequency weights, and the
metrics are computed on the weighted rows, which equals computing them on the expanded resample (ties in ranks
averaged as :func:`scipy.stats.spearmanr` does). Resamples where a metric is undefined (fewer than 3 rows, or a
side constant) are dropped and counted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from uniqa.errors import UniqaError
from uniqa.evaluation.config import BootstrapConfig
from uniqa.evaluation.metrics import MIN_POINTS, plcc, srcc

DRAW = 100  # resamples drawn at once; draw k comes from default_rng([seed, k]): the same for any row count
POINT = {"srcc": srcc, "plcc": plcc}
GROUPED_TASKS = ("quality",)  # tasks whose rows resample by their `group` (reference); others by image_id


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval (``lo``/``hi`` None when undefined)."""

    point: float | None
    lo: float | None
    hi: float | None
    resamples: int  # resamples the interval is computed from
    dropped: int  # resamples left out: the metric was undefined on them

    @property
    def ci(self) -> list[float] | None:
        return None if self.lo is None else [self.lo, self.hi]


def bootstrap_units(task: Sequence, group: Sequence | None, image_id: Sequence) -> np.ndarray:
    """Each row's resampling unit: its ``group`` for ``quality`` (IQA) rows with a group, else its ``image_id``."""
    ids = np.asarray(image_id, dtype=object)
    if group is None:
        return ids
    use = [t in GROUPED_TASKS and g is not None and g == g for t, g in zip(task, group)]  # g == g: not NaN
    return np.where(np.array(use, dtype=bool), np.asarray(group, dtype=object), ids)


def unit_name(task: str) -> str:
    """``group`` or ``image``: what one bootstrap unit of a ``task`` dataset is."""
    return "group" if task in GROUPED_TASKS else "image"


def group_index(groups: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct group ids, each row's index into them)."""
    ids, index = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    return ids, index.ravel()


def draws(n_groups: int, cfg: BootstrapConfig) -> Iterator[np.ndarray]:
    """(<= :data:`DRAW`, n_groups) counts: how often each group is drawn in each resample, ``cfg.resamples`` rows
    in all. A function of ``cfg.seed`` and ``n_groups`` only."""
    for k, start in enumerate(range(0, cfg.resamples, DRAW)):
        size = min(DRAW, cfg.resamples - start)
        picks = np.random.default_rng([cfg.seed, k]).integers(0, n_groups, (size, n_groups))
        offsets = (np.arange(size) * n_groups)[:, None]
        yield np.bincount((picks + offsets).ravel(), minlength=size * n_groups).reshape(size, n_groups)


def row_weights(groups: Sequence, cfg: BootstrapConfig) -> Iterator[np.ndarray]:
    """(<= :data:`DRAW`, rows) frequency weights of the rows in each resample (the count of the row's group)."""
    ids, index = group_index(groups)
    for counts in draws(len(ids), cfg):
        yield counts[:, index]


@dataclass(frozen=True)
class _Ranker:
    """One vector sorted once: per-resample weights of its distinct values and the rows' average ranks."""

    order: np.ndarray  # the rows in ascending order
    ends: np.ndarray  # the last sorted position of each distinct value
    inverse: np.ndarray  # each row's distinct value

    @classmethod
    def of(cls, x: np.ndarray) -> _Ranker:
        order = np.argsort(x, kind="stable")
        new = np.diff(x[order]) != 0
        inverse = np.empty(len(x), dtype=np.intp)
        inverse[order] = np.concatenate([[0], np.cumsum(new)]) if len(x) else []
        return cls(order, np.flatnonzero(np.append(new, True)) if len(x) else order, inverse)

    def counts(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(weight of the values up to and including each distinct value, weight of each), per resample."""
        upto = np.cumsum(w[:, self.order], axis=1)[:, self.ends]
        return upto, np.diff(upto, axis=1, prepend=0)

    def ranks(self, upto: np.ndarray, per: np.ndarray) -> np.ndarray:
        """Average 1-based ranks of each row in the expanded resample (ties share the mean rank)."""
        return (upto - (per - 1) / 2)[:, self.inverse]


def weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson correlation per row of ``w`` (frequency weights); ``x``, ``y`` broadcast against ``w``."""
    total = w.sum(axis=1, keepdims=True)
    dx = x - (w * x).sum(axis=1, keepdims=True) / total
    dy = y - (w * y).sum(axis=1, keepdims=True) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (w * dx * dy).sum(axis=1) / np.sqrt((w * dx * dx).sum(axis=1) * (w * dy * dy).sum(axis=1))
    return np.clip(r, -1.0, 1.0)


class _Scorer:
    """SRCC / PLCC of one prediction vector against MOS for a batch of resample weights (see :func:`weighted`)."""

    def __init__(self, pred: np.ndarray, mos: np.ndarray):
        self.pred, self.mos = pred, mos
        self.pred_rank, self.mos_rank = _Ranker.of(pred), _Ranker.of(mos)

    def __call__(self, w: np.ndarray, metrics: Sequence[str]) -> dict[str, np.ndarray]:
        """Each metric per resample, NaN where it is undefined (fewer than 3 rows, a side constant)."""
        pred_counts, mos_counts = self.pred_rank.counts(w), self.mos_rank.counts(w)
        defined = ((w.sum(axis=1) >= MIN_POINTS) & ((pred_counts[1] > 0).sum(axis=1) > 1)
                   & ((mos_counts[1] > 0).sum(axis=1) > 1))
        out = {}
        for name in metrics:
            if name == "srcc":
                values = weighted_pearson(self.pred_rank.ranks(*pred_counts), self.mos_rank.ranks(*mos_counts), w)
            else:
                values = weighted_pearson(self.pred, self.mos, w)
            out[name] = np.where(defined, values, np.nan)
        return out


def weighted(metric: str, pred, mos, weights: np.ndarray) -> np.ndarray:
    """``metric`` of ``pred`` against ``mos`` per row of ``weights`` (resamples x rows, frequency weights): equal
    to the metric of the rows repeated that often; NaN where it is undefined."""
    _check_metrics([metric])
    scorer = _Scorer(np.asarray(pred, np.float64), np.asarray(mos, np.float64))
    return scorer(np.atleast_2d(weights), [metric])[metric]


def _inputs(mos, groups, *preds) -> tuple[np.ndarray, ...]:
    mos = np.asarray(mos, dtype=np.float64).ravel()
    preds = tuple(np.asarray(p, dtype=np.float64).ravel() for p in preds)
    sizes = {len(mos), len(groups), *(len(p) for p in preds)}
    if len(sizes) != 1:
        raise UniqaError(f"predictions, MOS and groups differ in length: {sorted(sizes)}")
    for name, x in (("MOS", mos), *(("predictions", p) for p in preds)):
        if not np.isfinite(x).all():
            raise UniqaError(f"{name} contain NaN or inf at index {int(np.flatnonzero(~np.isfinite(x))[0])}")
    return mos, *preds


def _check_metrics(metrics: Sequence[str]) -> None:
    unknown = [m for m in metrics if m not in POINT]
    if unknown:
        raise UniqaError(f"no bootstrap for metric {unknown[0]!r}; known: {sorted(POINT)}")


def _point(name: str, pred: np.ndarray, mos: np.ndarray) -> float | None:
    try:
        return POINT[name](pred, mos)
    except UniqaError:
        return None


def _undefined(cfg: BootstrapConfig) -> Interval:
    """Too few rows for any metric: no point, no interval, every resample dropped."""
    return Interval(None, None, None, 0, cfg.resamples)


def _interval(point: float | None, values: np.ndarray, cfg: BootstrapConfig) -> Interval:
    kept = values[np.isfinite(values)]
    dropped = len(values) - len(kept)
    if point is None or not len(kept):
        return Interval(point, None, None, len(kept), dropped)
    tail = 100 * (1 - cfg.level) / 2
    lo, hi = np.percentile(kept, [tail, 100 - tail])
    return Interval(point, float(lo), float(hi), len(kept), dropped)


def intervals(pred, mos, groups: Sequence, cfg: BootstrapConfig = BootstrapConfig(),
              metrics: Sequence[str] = ("srcc", "plcc")) -> dict[str, Interval]:
    """Each metric of ``pred`` against ``mos`` with its interval, every metric on the same resamples."""
    _check_metrics(metrics)
    mos, pred = _inputs(mos, groups, pred)
    if len(mos) < MIN_POINTS:
        return {m: _undefined(cfg) for m in metrics}
    scorer = _Scorer(pred, mos)
    batches = [scorer(w, metrics) for w in row_weights(groups, cfg)]
    return {m: _interval(_point(m, pred, mos), np.concatenate([b[m] for b in batches]), cfg) for m in metrics}


def interval(pred, mos, groups: Sequence, metric: str = "srcc", cfg: BootstrapConfig = BootstrapConfig()) -> Interval:
    """One metric of ``pred`` against ``mos`` with its cluster-bootstrap percentile interval."""
    return intervals(pred, mos, groups, cfg, (metric,))[metric]


def paired_interval(pred_a, pred_b, mos, groups: Sequence, metric: str = "srcc",
                    cfg: BootstrapConfig = BootstrapConfig()) -> Interval:
    """``metric(pred_b) - metric(pred_a)`` with its interval: both scored on the same resamples of the same rows.
    A resample where either side is undefined is dropped."""
    _check_metrics([metric])
    mos, pred_a, pred_b = _inputs(mos, groups, pred_a, pred_b)
    if len(mos) < MIN_POINTS:
        return _undefined(cfg)
    a, b = _Scorer(pred_a, mos), _Scorer(pred_b, mos)
    diffs = np.concatenate([b(w, [metric])[metric] - a(w, [metric])[metric] for w in row_weights(groups, cfg)])
    first, second = _point(metric, pred_a, mos), _point(metric, pred_b, mos)
    return _interval(None if first is None or second is None else second - first, diffs, cfg)
