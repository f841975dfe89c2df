"""``EvaluateConfig``: which split(s), which side of them and which score columns ``uniqa evaluate`` correlates
with ``mos_norm``. Types and ranges only; the columns are checked against the tables in the run's pre-flight."""

from __future__ import annotations

from dataclasses import dataclass

from uniqa.errors import UniqaError
from uniqa.schema import SPLIT_COLUMNS, SPLIT_VALUES

ALL_SPLITS = "all"


@dataclass(frozen=True)
class EvaluateConfig:
    split: str = "split_0"  # a split column (split_0 .. split_9), or "all": each of the ten, one metric row each
    side: str = "test"  # the side of the split evaluated: test (the protocol), val or train
    heads: tuple[str, ...] = ()  # score columns to evaluate; empty: every head column of the scores table

    def __post_init__(self):
        if self.split not in (*SPLIT_COLUMNS, ALL_SPLITS):
            raise UniqaError(f"split must be one of {[*SPLIT_COLUMNS, ALL_SPLITS]}, got {self.split!r}")
        if self.side not in SPLIT_VALUES:
            raise UniqaError(f"side must be one of {list(SPLIT_VALUES)}, got {self.side!r}")
        if not isinstance(self.heads, tuple) or not all(isinstance(h, str) and h for h in self.heads):
            raise UniqaError(f"heads must be a list of score column names, got {self.heads!r}")

    @property
    def splits(self) -> tuple[str, ...]:
        """The split columns evaluated, in order."""
        return SPLIT_COLUMNS if self.split == ALL_SPLITS else (self.split,)
