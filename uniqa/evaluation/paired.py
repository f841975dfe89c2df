"""Paired comparisons of scoring phases (e.g. before / after pre-training) on the same evaluated rows: the gain in
SRCC with its paired bootstrap interval (:func:`uniqa.evaluation.bootstrap.paired_interval`).

:class:`PartScores` holds one dataset's evaluated rows (MOS, bootstrap units) and each phase's score of one head
on them, NaN where the phase has no usable score (no score row, an ``error``, a null). :func:`gain` compares two
phases on the rows both scored; :func:`read_part` builds a :class:`PartScores` from a manifest and score tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc

from uniqa import storage
from uniqa.evaluation.bootstrap import bootstrap_units, paired_interval, unit_name
from uniqa.evaluation.config import BootstrapConfig
from uniqa.tables import dataset_schema, parquet_files, read_columns


@dataclass(frozen=True)
class PartScores:
    """One dataset's evaluated rows and each phase's score of one head on them (NaN: no usable score)."""

    dataset: str
    head: str
    unit: str  # what one bootstrap unit is: "group" (a reference, quality datasets) or "image"
    mos: np.ndarray  # mos_norm per row
    units: np.ndarray  # each row's bootstrap unit (group id or image id)
    scores: dict[str, np.ndarray]  # phase -> the head's score per row, NaN where unusable

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.head}"


def gain(part: PartScores, earlier: str, later: str, cfg: BootstrapConfig = BootstrapConfig()) -> dict:
    """SRCC(later) - SRCC(earlier) on the rows both phases scored, with its paired interval:
    ``{"point", "ci": [lo, hi], "n", "groups", "dropped"}`` (point / ci None when undefined or a phase is
    missing)."""
    if earlier not in part.scores or later not in part.scores:
        return {"point": None, "ci": None, "n": 0, "groups": 0, "dropped": 0}
    a, b = part.scores[earlier], part.scores[later]
    both = np.isfinite(a) & np.isfinite(b)
    found = paired_interval(a[both], b[both], part.mos[both], part.units[both], "srcc", cfg)
    return {"point": found.point, "ci": found.ci, "n": int(both.sum()), "groups": len(set(part.units[both])),
            "dropped": found.dropped}


def read_part(manifest: str, scores: dict[str, str | tuple[str, str]], dataset: str, head: str, split: str,
              side: str = "test") -> PartScores:
    """The labelled ``dataset`` rows of ``manifest`` on ``side`` of ``split`` (sorted by image_id) with each
    phase's ``head`` score from ``scores`` (phase -> a scores folder, or (folder, column) for a phase scored under
    another column, e.g. a classic metric; a folder that is absent leaves the phase out)."""
    files = parquet_files(manifest)
    names = dataset_schema(files).names
    wanted = ["image_id", "mos_norm", *[c for c in ("task", "group") if c in names]]
    keep = (pc.field("dataset") == dataset) & (pc.field(split) == side) & pc.field("mos_norm").is_valid()
    rows = read_columns(files, wanted, filter=keep).sort_by("image_id")
    ids = rows["image_id"].to_pylist()
    task = rows["task"].to_pylist() if "task" in names else [None] * len(ids)
    group = rows["group"].to_pylist() if "group" in names else None
    where = {phase: (found, head) if isinstance(found, str) else tuple(found) for phase, found in scores.items()}
    return PartScores(dataset, head, unit_name(task[0] if task else None), rows["mos_norm"].to_numpy(),
                      bootstrap_units(task, group, ids),
                      {phase: phase_scores(uri, column, ids) for phase, (uri, column) in where.items()
                       if storage.exists(uri)})


def phase_scores(scores: str, head: str, ids: list[str]) -> np.ndarray:
    """``head``'s score of each of ``ids`` in the scores table ``scores``: NaN without a row, with an error or a
    null score."""
    table = read_columns(parquet_files(scores), ["image_id", "error", head])
    usable = {i: v for i, v, e in zip(table["image_id"].to_pylist(), table[head].to_pylist(),
                                      table["error"].to_pylist()) if e is None and v is not None}
    return np.array([usable.get(i, np.nan) for i in ids], dtype=np.float64)

