"""The report's figures as ``data:image/png;base64`` URIs (matplotlib's object API on the Agg canvas, as
:mod:`uniqa.curation.plot` draws: no pyplot state, no display). PNG rather than SVG: matplotlib's SVG carries
namespace and metadata URLs, and the report holds no ``http(s)://`` reference."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from uniqa.report.html import data_uri

DPI = 100
PHASE_COLOURS = {"classic": "tab:orange", "before": "tab:gray", "after": "tab:blue", "adapted": "tab:green"}


@dataclass(frozen=True)
class Panel:
    """One scatter panel: predicted score ``y`` against the label ``x``."""

    title: str
    x: np.ndarray
    y: np.ndarray
    colour: str = "tab:blue"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return data_uri(buf.getvalue(), "image/png")


def scatter_grid(rows: list[tuple[str, list[Panel]]], xlabel: str, ylabel: str) -> str:
    """One row of panels per (label, panels); every panel's x range is [0, 1]."""
    ncols = max(len(panels) for _, panels in rows)
    fig = _figure(3.2 * ncols, 2.8 * len(rows))
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for r, (label, panels) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            if c >= len(panels):
                ax.set_axis_off()
                continue
            p = panels[c]
            ax.scatter(p.x, p.y, s=9, alpha=0.7, color=p.colour, edgecolors="none")
            ax.set_title(f"{label} · {p.title}", fontsize=9)
            ax.set_xlim(-0.02, 1.02)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_ylabel(ylabel if c == 0 else "", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    return png_uri(fig)


def loss_curve(step: np.ndarray, loss: np.ndarray, lr: np.ndarray | None = None) -> str:
    """Loss against step; the learning rate on a second axis when given."""
    fig = _figure(8, 3.2)
    ax = fig.subplots()
    ax.plot(step, loss, color="tab:blue", lw=1.4, marker="o" if len(step) < 40 else None, ms=3, label="loss")
    ax.set_xlabel("step")
    ax.set_ylabel("contrastive loss", color="tab:blue")
    ax.grid(alpha=0.3)
    if lr is not None:
        twin = ax.twinx()
        twin.plot(step, lr, color="tab:orange", lw=1, ls="--", label="lr")
        twin.set_ylabel("learning rate", color="tab:orange")
        twin.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    return png_uri(fig)


def histograms(values: dict[str, np.ndarray], bins: int = 30) -> str:
    """One histogram panel per head (its finite values), with the median marked."""
    fig = _figure(4.2 * len(values), 3)
    for ax, (head, v) in zip(fig.subplots(1, len(values), squeeze=False)[0], values.items()):
        v = v[np.isfinite(v)]
        if len(v) == 0:
            ax.text(0.5, 0.5, "no usable scores", ha="center", transform=ax.transAxes)
        else:
            ax.hist(v, bins=bins, color="tab:blue", alpha=0.8)
            ax.axvline(float(np.median(v)), color="tab:red", ls="--", lw=1, label=f"median {np.median(v):.3f}")
            ax.legend(fontsize=7)
        ax.set_title(f"{head} (n={len(v)})", fontsize=9)
        ax.set_xlabel(head)
        ax.set_ylabel("images")
    return png_uri(fig)


def grouped_bars(categories: list[str], series: dict[str, list[float]], ylabel: str,
                 intervals: dict[str, list[tuple[float, float] | None]] | None = None) -> str:
    """Bars per category, one colour per series (a missing value leaves a gap); ``intervals`` (per series, a
    (lo, hi) or None per category) draws error bars."""
    fig = _figure(min(14.0, max(6.0, 0.35 * len(categories) * max(1, len(series)) + 2)), 3.4)
    ax = fig.subplots()
    x = np.arange(len(categories))
    width = 0.8 / max(1, len(series))
    for i, (name, vals) in enumerate(series.items()):
        values = np.asarray(vals, float)
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name, color=PHASE_COLOURS.get(name),
               yerr=error_bars(values, (intervals or {}).get(name)), capsize=3, error_kw={"lw": 1})
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xticks(x, categories, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-1, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return png_uri(fig)


def error_bars(values: np.ndarray, intervals: list[tuple[float, float] | None] | None) -> np.ndarray | None:
    """(2, n) distances below / above each value of its interval (0 where there is none), or None."""
    if not intervals:
        return None
    bounds = np.array([iv if iv is not None else (np.nan, np.nan) for iv in intervals], float).reshape(-1, 2)
    below, above = values - bounds[:, 0], bounds[:, 1] - values
    return np.nan_to_num(np.clip(np.stack([below, above]), 0, None))
