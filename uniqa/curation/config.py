"""``FilterConfig``: which rows of a scoring run to keep, and how the job is sized.

Exactly one rule: ``where`` (an expression over score columns, see :mod:`uniqa.curation.expression`) or
``top_fraction`` of ``by`` (a quantile threshold, per group with ``group_by``). Types, ranges and the
expression's syntax are checked here; whether the columns exist is checked against the scores before any
Ray work (:func:`uniqa.curation.run.preflight`).
"""

from __future__ import annotations

from dataclasses import dataclass

from uniqa.curation.expression import Expr, parse
from uniqa.errors import UniqaError

GROUP_SPECIAL = ("dataset", "folder")  # folder: the parent folder of image_uri; others: a column


@dataclass(frozen=True)
class FilterConfig:
    where: str | None = None  # e.g. "quality >= 0.6 and aesthetics >= 0.5"
    top_fraction: float | None = None  # keep this share (0, 1] of rows with the highest ``by`` score
    by: str | None = None  # score column ranked by top_fraction
    group_by: str | None = None  # dataset | folder | COLUMN: one threshold per group (top_fraction only)
    sketch_k: int = 400  # KLL sketch size: rank error ~0.0066 at 400 (uniqa.curation.quantiles.rank_error)
    bins: int = 50  # histogram bins per score column
    max_groups: int = 10_000  # more groups than this is a mistake (group_by a per-image column?)
    bucket_rows: int = 250_000  # rows per join partition when a manifest is joined (bounds a task's memory)

    def __post_init__(self):
        if (self.where is None) == (self.top_fraction is None):
            raise UniqaError("give exactly one rule: --where EXPRESSION or --top-fraction F --by COLUMN "
                             f"(got where={self.where!r}, top_fraction={self.top_fraction!r})")
        if self.where is not None:
            if not isinstance(self.where, str):
                raise UniqaError(f"where must be a string expression, got {self.where!r}")
            self.expression  # noqa: B018 - parse now: a syntax error fails before anything else
            for name, value in (("by", self.by), ("group_by", self.group_by)):
                if value is not None:
                    raise UniqaError(f"{name}={value!r} applies to --top-fraction only, not to --where")
        else:
            f = self.top_fraction
            if not isinstance(f, (int, float)) or isinstance(f, bool) or not 0 < f <= 1:
                raise UniqaError(f"top_fraction must be a number in (0, 1], got {f!r}")
            if not self.by or not isinstance(self.by, str):
                raise UniqaError("--top-fraction needs --by COLUMN: the score column to rank by, e.g. --by quality")
        if self.group_by is not None and (not isinstance(self.group_by, str) or not self.group_by):
            raise UniqaError(f"group_by must be dataset, folder or a column name, got {self.group_by!r}")
        for name, low in (("sketch_k", 8), ("bins", 1), ("max_groups", 1), ("bucket_rows", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise UniqaError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.sketch_k > 65535:
            raise UniqaError(f"sketch_k must be at most 65535, got {self.sketch_k}")

    @property
    def expression(self) -> Expr | None:
        return parse(self.where) if self.where is not None else None
