"""The histogram figure of a filter run: one panel per score column, all usable rows vs kept rows (from the
binned counts the workers summed, never raw values), with the thresholds drawn as vertical lines."""

from __future__ import annotations

import io

MAX_LABELLED = 8  # more threshold lines than this share one legend entry


def histogram_png(edges: dict[str, list[float]], counts: dict[str, list[list[int]]],
                  lines: dict[str, list[tuple[str, float]]], title: str = "") -> bytes:
    """PNG bytes. ``counts[column] = [all, kept]`` per bin of ``edges[column]``; ``lines[column]`` = (label,
    value) thresholds."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = [c for c in edges if c in counts] or ["(no scores)"]
    fig = Figure(figsize=(7, 2.6 * len(columns)), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, column in zip(fig.subplots(len(columns), 1, squeeze=False)[:, 0], columns):
        if column not in counts:
            ax.text(0.5, 0.5, "no usable scores", ha="center", transform=ax.transAxes)
            continue
        everything, kept = counts[column]
        ax.stairs(everything, edges[column], fill=True, color="0.8", label="all (usable)")
        ax.stairs(kept, edges[column], fill=True, color="tab:blue", alpha=0.7, label="kept")
        marks = lines.get(column, [])
        for i, (label, value) in enumerate(marks):
            many = len(marks) > MAX_LABELLED
            ax.axvline(value, color="tab:red", lw=0.8 if many else 1.2, ls="--",
                       label=(f"{len(marks)} group thresholds" if i == 0 else None) if many else label)
        ax.set_xlabel(column)
        ax.set_ylabel("images")
        ax.legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()
