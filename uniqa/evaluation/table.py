"""The evaluation's rows as text: the aligned table ``uniqa evaluate`` prints, and the per-head figures over
several splits (median, mean +- std) its summary records."""

from __future__ import annotations

import numpy as np

from uniqa.evaluation.metrics import METRICS, WITH_INTERVAL
from uniqa.provenance import leak_note


def over_splits(rows: list[dict]) -> list[dict]:
    """Median, mean and std of each metric over the splits of each (dataset, head): the 10-split protocol."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["head"]), []).append(row)
    out = []
    for (dataset, head), group in groups.items():
        record = {"dataset": dataset, "head": head, "splits": len(group)}
        for name in METRICS:
            values = np.array([r[name] for r in group if r[name] is not None], dtype=np.float64)
            record |= {f"{name}_median": float(np.median(values)) if values.size else None,
                       f"{name}_mean": float(values.mean()) if values.size else None,
                       f"{name}_std": float(values.std()) if values.size else None}
        out.append(record)
    return out


def format_table(rows: list[dict], level: float = 0.95) -> str:
    """The metric rows as an aligned text table, SRCC and PLCC with their interval (and, over several splits, their
    median / mean +- std)."""
    width = max([len(r["dataset"]) for r in rows] + [7])
    hwidth = max([len(r["head"]) for r in rows] + [4])
    lines = [f"{'dataset':{width}s}  {'head':{hwidth}s}  {'split':8s}  {'side':5s}  {'n':>5s}  {'groups':>6s}  "
             + "  ".join(f"{_metric_title(m, level):>22s}" if m in WITH_INTERVAL else f"{m.upper():>6s}"
                         for m in METRICS)
             + f"  {'excluded':>8s}  {'missing':>7s}"]
    for r in rows:
        values = "  ".join(f"{_with_interval(r, m):>22s}" if m in WITH_INTERVAL else f"{_num(r[m]):>6s}"
                           for m in METRICS)
        lines.append(f"{r['dataset']:{width}s}  {r['head']:{hwidth}s}  {r['split']:8s}  {r['side']:5s}  {r['n']:5d}  "
                     f"{r['groups']:6d}  {values}  {r['excluded']:8d}  {r['missing']:7d}"
                     + (f"  ({r['note']})" if r["note"] else ""))
    for agg in over_splits(rows) if len({r["split"] for r in rows}) > 1 else []:
        stats = "  ".join(f"{m.upper()} {_num(agg[m + '_median'])} median, {_num(agg[m + '_mean'])} +- "
                          f"{_num(agg[m + '_std'], '.3f')}" for m in METRICS)
        lines.append(f"{agg['dataset']:{width}s}  {agg['head']:{hwidth}s}  over {agg['splits']} splits: {stats}")
    most = max((r["leaked"] for r in rows if r.get("leaked")), default=0)
    if most:
        lines.append(leak_note(most, "of the correlated images of a row are"))
    return "\n".join(lines)


def _num(value: float | None, spec: str = "+.3f") -> str:
    return "n/a" if value is None else format(value, spec)


def _metric_title(name: str, level: float) -> str:
    return f"{name.upper()} [{100 * level:g}% CI]"


def _with_interval(row: dict, name: str) -> str:
    """``+0.412 [+0.30, +0.51]``; the point alone when there is no interval."""
    lo, hi = row.get(f"{name}_lo"), row.get(f"{name}_hi")
    return _num(row[name]) + ("" if lo is None else f" [{lo:+.2f}, {hi:+.2f}]")
