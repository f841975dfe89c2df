"""The purification stage's config (checks of types and ranges only; storage is checked in the pre-flight)."""

from __future__ import annotations

from dataclasses import dataclass

from uniqa.errors import UniqaError
from uniqa.partition import SHUFFLE_CHOICES
from uniqa.purification.clean import CleanConfig
from uniqa.purification.embedders import EmbedderConfig
from uniqa.schema import TASKS


@dataclass(frozen=True)
class PurifyConfig:
    keep: int = 5  # K: comments kept per image
    caption_task: str = "aesthetics"  # captions of this task are the images' metadata for AR
    images_per_batch: int = 64  # images per purification batch (one embedder call each)
    num_actors: int = 1  # purification workers (each loads the embedder once)
    num_cpus: float = 1.0  # CPUs per worker
    num_gpus: float = 0.0  # GPUs per worker (with embedder.device=cuda)
    partitions: int = 0  # image_id hash partitions of the comments-captions join (0: one per rows_per_partition)
    rows_per_partition: int = 100_000  # manifest + caption rows per join partition when partitions=0
    shuffle: str = "auto"  # how rows reach their partition: auto | sort | hash (see uniqa.partition.SHUFFLES)
    clean: CleanConfig = CleanConfig()
    embedder: EmbedderConfig = EmbedderConfig()

    def __post_init__(self):
        for name in ("keep", "images_per_batch", "num_actors", "rows_per_partition"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UniqaError(f"{name} must be an int >= 1, got {value!r}")
        if isinstance(self.partitions, bool) or not isinstance(self.partitions, int) or self.partitions < 0:
            raise UniqaError(f"partitions must be an int >= 0 (0: automatic), got {self.partitions!r}")
        for name in ("num_cpus", "num_gpus"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UniqaError(f"{name} must be a number >= 0, got {value!r}")
        if self.caption_task not in TASKS:
            raise UniqaError(f"caption_task must be one of {list(TASKS)}, got {self.caption_task!r}")

        if self.shuffle not in SHUFFLE_CHOICES:
            raise UniqaError(f"shuffle must be one of {list(SHUFFLE_CHOICES)}, got {self.shuffle!r}")

    def num_partitions(self, input_rows: int) -> int:
        return self.partitions or max(1, -(-input_rows // self.rows_per_partition))
