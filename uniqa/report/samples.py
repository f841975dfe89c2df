"""The gallery of a demo run: a dozen images of the evaluated side, spread over the MOS range, each with its MOS,
its score in every phase, its caption and its purified comments."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uniqa.report import gallery
from uniqa.report.evaluation import distortion_names
from uniqa.report.html import esc, fmt
from uniqa.report.load import RunFolder, head_columns

GALLERY_SIZE = 12
COMMENTS_SHOWN = 3


def spread(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """``k`` rows evenly spaced over ``frame`` sorted by ``mos_norm`` (lowest and highest included)."""
    ordered = frame.sort_values(["mos_norm", "image_id"]).reset_index(drop=True)
    picks = np.unique(np.linspace(0, len(ordered) - 1, min(k, len(ordered))).round().astype(int))
    return ordered.iloc[picks]


def quotas(available: dict[str, int], size: int) -> dict[str, int]:
    """``size`` places dealt out one at a time over the datasets in turn, skipping one that has no image left."""
    quota = dict.fromkeys(available, 0)
    while sum(quota.values()) < size and any(quota[d] < n for d, n in available.items()):
        for d, n in available.items():
            if quota[d] < n and sum(quota.values()) < size:
                quota[d] += 1
    return quota


def pick(test: pd.DataFrame, size: int = GALLERY_SIZE) -> pd.DataFrame:
    """``size`` images shared out over the datasets of the evaluated side, each dataset's spread over its MOS."""
    groups = {d: test[test["dataset"] == d] for d in sorted(test["dataset"].unique())}
    quota = quotas({d: len(g) for d, g in groups.items()}, size)
    return pd.concat([spread(g, quota[d]) for d, g in groups.items() if quota[d]], ignore_index=True)


def _lookup(frame: pd.DataFrame | None, column: str) -> dict[str, list[str]]:
    """image_id -> the non-null values of ``column`` (in ``rank`` order where the frame has one)."""
    if frame is None or column not in frame.columns:
        return {}
    rows = frame[frame[column].notna()]
    if "rank" in rows.columns:
        rows = rows.sort_values(["image_id", "rank"])
    return rows.groupby("image_id")[column].agg(list).to_dict()


def _scores(run: RunFolder, row: dict) -> list[tuple[str, str]]:
    """(label, value) of the image's score in every phase: the head named after its task when scored, else all."""
    facts = []
    for phase, frame in run.phase_scores.items():
        heads = head_columns(frame)
        if row["task"] in heads:
            heads = [row["task"]]
        match = frame[frame["image_id"] == row["image_id"]]
        for head in heads:
            value = match[head].iloc[0] if len(match) else None
            error = match["error"].iloc[0] if len(match) and "error" in match.columns else None
            facts.append((f"{phase} {head}", esc(error) if isinstance(error, str) else fmt(value)))
    return facts


def test_gallery(run: RunFolder) -> str | None:
    test = run.test_side
    if test is None:
        return None
    chosen = pick(test)
    captions, comments = _lookup(run.captions, "caption"), _lookup(run.comments, "comment")
    cells = []
    for row in chosen.to_dict("records"):
        facts = [("dataset", esc(row["dataset"])), ("MOS", fmt(row.get("mos"), ".2f")),
                 ("mos_norm", fmt(row["mos_norm"]))]
        if not pd.isna(row.get("dist_type", np.nan)):
            name = distortion_names(run, row["dataset"]).get(int(row["dist_type"]), f"type {int(row['dist_type'])}")
            facts.append(("distortion", f"{esc(name)}, level {fmt(row.get('dist_level'), '.0f')}"))
        facts += _scores(run, row)
        texts = [("caption", captions.get(row["image_id"], [])[:1]),
                 ("purified comments", comments.get(row["image_id"], [])[:COMMENTS_SHOWN])]
        cells.append(gallery.Cell(row["image_id"], row.get("image_uri"), facts, texts))
    split, side = run.split
    return (f'<p class="intro">{len(cells)} images of the {esc(side)} side of {esc(split)}, spread from the lowest '
            "to the highest MOS per dataset; scores are the head matching the image's task.</p>"
            + gallery.render(cells))
