"""Approximate quantiles with mergeable KLL sketches (Apache DataSketches): one sketch per (group, column) and
block, built in the workers, serialised, and merged on the driver. A sketch holds O(k log(n/k)) values, never
the rows, so the driver's memory does not grow with the row count.

The bound: a quantile read from a KLL sketch of parameter ``k`` has a normalised rank error of at most
:func:`rank_error(k) <rank_error>` (e.g. 0.0066 for k=400) with 99% confidence, for any number of rows and
any merge order; a sketch that has seen fewer than about ``k`` values is exact.
"""

from __future__ import annotations

import numpy as np
from datasketches import kll_doubles_sketch

CONFIDENCE = 0.99  # of the rank-error bound DataSketches states for a single quantile


def rank_error(k: int) -> float:
    """Normalised rank error of one quantile read from a KLL sketch of parameter ``k`` (99% confidence)."""
    return float(kll_doubles_sketch.get_normalized_rank_error(k, False))


def sketch(values: np.ndarray, k: int) -> kll_doubles_sketch:
    s = kll_doubles_sketch(k)
    if len(values):
        s.update(np.ascontiguousarray(values, dtype=np.float64))
    return s


def grouped_sketches(values: np.ndarray, codes: np.ndarray, names: list[str], k: int) -> dict[str, bytes]:
    """One serialised sketch per group present in ``values`` (``codes`` index ``names``; rows already restricted
    to valid values)."""
    if not len(values):
        return {}
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    return {names[i]: sketch(values[order[bounds[i]:bounds[i + 1]]], k).serialize()
            for i in range(len(names)) if bounds[i + 1] > bounds[i]}


def merge(into: dict, key, blob: bytes, k: int) -> None:
    """Merge a serialised sketch into ``into[key]`` (created on first use)."""
    part = kll_doubles_sketch.deserialize(blob)
    if key not in into:
        into[key] = kll_doubles_sketch(k)
    into[key].merge(part)


def top_threshold(s: kll_doubles_sketch, fraction: float) -> float:
    """The score a row needs to be in the top ``fraction`` of the sketched values: the smallest value whose
    exclusive rank (share of values strictly below it) is at least ``1 - fraction`` (within the rank error).
    Exact data keep ``ceil(fraction * n)`` rows (no ties); ``fraction = 1`` gives the minimum (keep all)."""
    return float(s.get_quantile(max(0.0, 1.0 - fraction), False))


def describe(s: kll_doubles_sketch) -> dict:
    """Rows, range and a few quantiles of one sketch (for the summary)."""
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    return {"rows": int(s.n), "min": float(s.get_min_value()), "max": float(s.get_max_value()),
            "quantiles": {str(q): float(v) for q, v in zip(qs, s.get_quantiles(list(qs)))},
            "exact": not s.is_estimation_mode()}
