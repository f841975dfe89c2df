"""``EvaluateConfig``: which split(s), which side of them and which score columns ``uniqa evaluate`` correlates
with ``mos_norm``, and ``BootstrapConfig``: how the 95% intervals around SRCC / PLCC are drawn. Types and ranges
only; the columns are checked against the tables in the run's pre-flight."""

from __future__ import annotations

from dataclasses import dataclass

from uniqa.errors import UniqaError
from uniqa.schema import SPLIT_COLUMNS, SPLIT_VALUES

ALL_SPLITS = "all"
MIN_RESAMPLES = 1000  # fewer resamples make the interval's ends noisy: only with allow_few


@dataclass(frozen=True)
class BootstrapConfig:
    resamples: int = 1000  # bootstrap resamples per interval (>= 1000 unless allow_few)
    seed: int = 0  # the resamples are a function of this seed and the sorted group ids only
    level: float = 0.95  # coverage of the percentile interval
    allow_few: bool = False  # permit resamples < 1000 (tests, quick looks)

    def __post_init__(self):
        low = 1 if self.allow_few else MIN_RESAMPLES
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, int) or self.resamples < low:
            hint = "" if self.allow_few else " (fewer only with allow_few: true)"
            raise UniqaError(f"bootstrap resamples must be an integer >= {low}{hint}, got {self.resamples!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UniqaError(f"bootstrap seed must be an integer >= 0, got {self.seed!r}")
        if isinstance(self.level, bool) or not isinstance(self.level, (int, float)) or not 0 < self.level < 1:
            raise UniqaError(f"bootstrap level must be a number in (0, 1), e.g. 0.95, got {self.level!r}")


@dataclass(frozen=True)
class EvaluateConfig:
    split: str = "split_0"  # a split column (split_0 .. split_9), or "all": each of the ten, one metric row each
    side: str = "test"  # the side of the split evaluated: test (the protocol), val or train
    heads: tuple[str, ...] = ()  # score columns to evaluate; empty: every head column of the scores table
    bootstrap: BootstrapConfig = BootstrapConfig()  # the intervals around SRCC and PLCC (srcc_lo .. plcc_hi)
    # go on when evaluated images are in the scoring model's pre-training corpus (uniqa.provenance), recorded
    allow_leak: bool = False

    def __post_init__(self):
        if self.split not in (*SPLIT_COLUMNS, ALL_SPLITS):
            raise UniqaError(f"split must be one of {[*SPLIT_COLUMNS, ALL_SPLITS]}, got {self.split!r}")
        if self.side not in SPLIT_VALUES:
            raise UniqaError(f"side must be one of {list(SPLIT_VALUES)}, got {self.side!r}")
        if not isinstance(self.heads, tuple) or not all(isinstance(h, str) and h for h in self.heads):
            raise UniqaError(f"heads must be a list of score column names, got {self.heads!r}")
        if not isinstance(self.bootstrap, BootstrapConfig):
            raise UniqaError(f"bootstrap must be a mapping of {{resamples, seed, level, allow_few}}, "
                             f"got {self.bootstrap!r}")

    @property
    def splits(self) -> tuple[str, ...]:
        """The split columns evaluated, in order."""
        return SPLIT_COLUMNS if self.split == ALL_SPLITS else (self.split,)
