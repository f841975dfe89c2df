"""``FeaturesConfig``: which frozen model, which views, how the job is sized. Types and ranges only here;
the model and the manifest are checked in :func:`uniqa.features.run.preflight`."""

from __future__ import annotations

from dataclasses import dataclass

from uniqa.errors import UniqaError

PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class FeaturesConfig:
    model: str = ""  # architecture (uniqa-small, ViT-B-16-quickgelu, ...) or one of our checkpoints
    pretrained: str | None = None  # weights for ``model`` (checkpoint path or open_clip tag; None: random init)
    train_views: int = 20  # K training views per image (flip + random crop); adapter epoch e uses view e % K
    test_views: str = "crops10"  # test protocol (uniqa.data.views.VIEW_PROTOCOLS): crops10 | five | full
    seed: int = 0  # run seed: combined with each image_id for its crops; also seeds a random-init model
    decode_size: int | None = None  # shorter side resized to this for every row; None: the manifest's decode_size
    pos_embedding: bool = True  # False: the image tower without its positional embedding (the reference ensemble)
    max_pixels: int = 120_000_000  # decompression-bomb limit per image
    precision: str = "fp32"  # fp32 | fp16 | bf16 (half precision only on GPU)
    batch_size: int = 16  # images per model actor call (each with all its views)
    views_per_pass: int = 64  # views per encoder pass: fixed, so features do not depend on batch_size
    num_actors: int = 1  # model actors (each loads the model once)
    num_gpus: float | None = None  # GPUs per actor (None: 1 if the cluster has GPUs, else 0)
    num_cpus: float = 1.0  # CPUs per model actor
    decode_cpus: float = 1.0  # CPUs per decode + views task
    threads: int | None = None  # torch threads of a CPU model actor (None: the thread policy, its num_cpus)
    rows_per_block: int | None = None  # images per decode + views task; None: as many as fill 64 MiB of views
    rows_per_file: int = 256  # images per output Parquet file (the unit of resume; an image never spans two)
    allow_leak: bool = False  # go on when test-side images are in the model's pre-training corpus (recorded)
    leak_splits: tuple[str, ...] = ()  # split columns whose test side is checked for a leak (empty: every one)

    def __post_init__(self):
        if not self.model:
            raise UniqaError("no model: pass --model NAME_OR_CHECKPOINT or set model in the config")
        from uniqa.data.views import VIEW_PROTOCOLS

        if self.test_views not in VIEW_PROTOCOLS:
            raise UniqaError(f"test_views must be one of {list(VIEW_PROTOCOLS)}, got {self.test_views!r}")
        if self.precision not in PRECISIONS:
            raise UniqaError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        for field in ("train_views", "batch_size", "views_per_pass", "num_actors", "rows_per_file", "max_pixels"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if field == "train_views" else 1):
                raise UniqaError(f"{field} must be a {'non-negative' if field == 'train_views' else 'positive'} "
                                 f"integer, got {value!r}")
        for field in ("decode_size", "threads", "rows_per_block"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise UniqaError(f"{field} must be a positive integer or null, got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise UniqaError(f"seed must be an integer, got {self.seed!r}")
        self._check_leak_splits()
        for field in ("pos_embedding", "allow_leak"):
            if not isinstance(getattr(self, field), bool):
                raise UniqaError(f"{field} must be true or false, got {getattr(self, field)!r}")
        for field in ("num_gpus", "num_cpus", "decode_cpus"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, (int, float)) or value < 0):
                raise UniqaError(f"{field} must be a number >= 0, got {value!r}")

    def _check_leak_splits(self) -> None:
        from uniqa.schema import SPLIT_COLUMNS

        splits = (self.leak_splits,) if isinstance(self.leak_splits, str) else tuple(self.leak_splits or ())
        object.__setattr__(self, "leak_splits", splits)
        wrong = next((s for s in splits if s not in SPLIT_COLUMNS), None)
        if wrong is not None:
            raise UniqaError(f"leak_splits has {wrong!r}, not a split column; valid: {', '.join(SPLIT_COLUMNS)}")

    def protocol(self, image_size: int, row_sizes=()) -> str:
        """The view protocol as one string (a key of the output): what views, at what size, decoded how
        (``@decode448``: :meth:`decode_key` of the manifest's ``row_sizes``; nothing when decoded as stored)."""
        decode = self.decode_key(row_sizes)
        suffix = "" if decode is None else f"@decode{decode}"
        return f"train{self.train_views}-flipcrop{image_size}+{self.test_views}-{image_size}{suffix}"

    def decode_key(self, row_sizes=()) -> str | None:
        """The decode sizes used (:func:`uniqa.data.images.decode_key`): ``decode_size`` for every row when set,
        else the manifest's distinct ``row_sizes``; None when every image is decoded as stored."""
        from uniqa.data.images import decode_key

        return decode_key(self.decode_size, row_sizes)

    def block_rows(self, image_size: int, total: int | None = None) -> int:
        """Images per decode + views task: ``rows_per_block``, or as many as fill 64 MiB with their K + T uint8
        views (:func:`uniqa.runtime.views_block_rows`; with ``total`` images, every model actor gets two blocks)."""
        if self.rows_per_block is not None:
            return self.rows_per_block
        from uniqa.data.views import VIEW_COUNTS
        from uniqa.runtime import views_block_rows

        views = self.train_views + VIEW_COUNTS[self.test_views]
        return views_block_rows(views * image_size * image_size * 3, total, self.num_actors)

    def decode_config(self):
        from uniqa.data.images import DecodeConfig

        return DecodeConfig(size=self.decode_size, max_pixels=self.max_pixels)
