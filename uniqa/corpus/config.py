"""The corpus stage's config: per-source sampling weights, the level-prompt text, shard and partition sizes."""

from __future__ import annotations

from dataclasses import dataclass

from uniqa.errors import UniqaError
from uniqa.partition import SHUFFLE_CHOICES
from uniqa.schema import SPLIT_COLUMNS

DATASET = "dataset:"  # holdout entry prefix: every image of the named dataset


@dataclass(frozen=True)
class CorpusConfig:
    caption_weight: float = 1.0  # relative sampling weight of an MLLM caption (quality or aesthetics)
    comment_weight: float = 1.0  # relative sampling weight of a purified comment
    # Relative sampling weight of the level-prompt text: 0 keeps those rows out of the `weight` column's sampling
    # (pre-training uses its own per-source weights, METHOD §2); >0 to sample them from `weight` too.
    level_prompt_weight: float = 0.0
    level_prompt: str = "{level} image"  # one text per labelled image: the adapter head's own prompt wording
    # Images left out of the corpus, so that no later evaluation tests on what pre-training saw (their texts count
    # as unknown_image): a split column (split_0..split_9: its test side in every manifest) or dataset:NAME (every
    # image of that dataset, e.g. a zero-shot target), or a list of them.
    holdout: str | list[str] | None = None
    rows_per_shard: int = 100_000  # most pairs per output Parquet file
    partitions: int = 0  # image_id hash partitions of the assembly (0: one per rows_per_partition input rows)
    rows_per_partition: int = 200_000  # input rows per partition when partitions=0 (what one task holds)
    shuffle: str = "auto"  # how rows reach their partition: auto | sort | hash (see uniqa.partition.SHUFFLES)

    def __post_init__(self):
        weights = {"caption_weight": self.caption_weight, "comment_weight": self.comment_weight,
                   "level_prompt_weight": self.level_prompt_weight}
        for name, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UniqaError(f"{name} must be a number >= 0, got {value!r}")
        if sum(weights.values()) <= 0:
            raise UniqaError(f"caption_weight, comment_weight and level_prompt_weight must not all be 0, got "
                             f"{self.caption_weight}, {self.comment_weight}, {self.level_prompt_weight}")
        if not isinstance(self.level_prompt, str) or "{level}" not in self.level_prompt or not _formats(
                self.level_prompt):
            raise UniqaError(f"level_prompt must be a text holding '{{level}}' and no other braces, e.g. "
                             f"'{{level}} image', got {self.level_prompt!r}")
        holdout = [self.holdout] if isinstance(self.holdout, str) else list(self.holdout or ())
        for item in holdout:
            if not isinstance(item, str) or not (item in SPLIT_COLUMNS or (item.startswith(DATASET)
                                                                           and len(item) > len(DATASET))):
                raise UniqaError(f"holdout must be a split column ({', '.join(SPLIT_COLUMNS[:2])} .. "
                                 f"{SPLIT_COLUMNS[-1]}), {DATASET}NAME, or a list of them, got {item!r}")
        object.__setattr__(self, "holdout", tuple(dict.fromkeys(holdout)))
        for name in ("rows_per_shard", "rows_per_partition"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UniqaError(f"{name} must be an int >= 1, got {value!r}")
        if isinstance(self.partitions, bool) or not isinstance(self.partitions, int) or self.partitions < 0:
            raise UniqaError(f"partitions must be an int >= 0 (0: automatic), got {self.partitions!r}")

        if self.shuffle not in SHUFFLE_CHOICES:
            raise UniqaError(f"shuffle must be one of {list(SHUFFLE_CHOICES)}, got {self.shuffle!r}")

    @property
    def holdout_splits(self) -> tuple[str, ...]:
        """The split columns whose test side is held out."""
        return tuple(h for h in self.holdout if h in SPLIT_COLUMNS)

    @property
    def holdout_datasets(self) -> tuple[str, ...]:
        """The datasets held out entirely (``dataset:NAME`` entries)."""
        return tuple(h[len(DATASET):] for h in self.holdout if h.startswith(DATASET))

    def num_partitions(self, input_rows: int) -> int:
        """Partitions for ``input_rows`` rows (manifest rows + candidate texts)."""
        return self.partitions or max(1, -(-input_rows // self.rows_per_partition))


def _formats(template: str) -> bool:
    try:
        template.format(level="good")
    except (KeyError, IndexError, ValueError):
        return False
    return True
