"""``AdaptConfig``: the adapter recipe (METHOD §3) and the evaluation protocols (METHOD §4).

Types and ranges only here; the manifest, the features and the model are checked in
:func:`uniqa.adapters.run.preflight` before any work.
"""

from __future__ import annotations

from dataclasses import dataclass

from uniqa.errors import UniqaError

HEADS = ("quality", "aesthetics")
PROTOCOLS = ("full", "few-label", "zero-shot")
MODES = ("cached", "exact")
RUNNERS = ("ray", "local")
ZERO_SHOT_IMAGES = ("test", "all")


EXECUTION = ("runner", "cpus_per_run", "threads", "device", "save_adapters", "allow_leak")  # leave results unchanged


@dataclass(frozen=True)
class AdaptConfig:
    model: str = ""  # architecture or checkpoint (as for `uniqa features` / `uniqa score`)
    pretrained: str | None = None  # weights for ``model`` (None: random init seeded with ``seed``)
    head: str = "quality"  # quality | aesthetics: the prompt family
    protocol: str = "full"  # full (10 splits) | few-label (sizes x seeds) | zero-shot (no training)
    prompt_set: str | None = None  # trained head's prompts (None: ``head``; e.g. quality-ensemble for UniQA*)
    mode: str = "cached"  # cached: train on cached features | exact: re-crop and re-encode images every epoch
    # --- the reference recipe (METHOD §3)
    epochs: int = 20  # 20 for KonIQ, 50 for LIVE-C in the reference
    batch_size: int = 8
    lr: float = 2e-4  # Adam, no weight decay; cosine annealing stepped once per epoch
    weight_decay: float = 0.0
    # --- protocols (METHOD §4)
    splits: tuple[int, ...] = tuple(range(10))  # manifest split columns used (full, zero-shot)
    few_label_sizes: tuple[int, ...] = (50, 100, 200)  # labelled training images (few-label)
    few_label_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # seed j draws its images from split_{j % 10}'s train side
    val_fraction: float = 0.1  # clean number: this share of the training groups (>= 1) is held out for epoch choice
    val_min_images: int = 16  # ... and at least this many images (more whole groups), never all groups
    seed: int = 0  # view seed (combined with image_id), random-init model seed, and the root of every run's seed
    train_views: int | None = None  # K cached training views per image (None: epochs, a new view every epoch)
    val_every: int | None = None  # validate every N optimiser steps (reference: KonIQ 2000, LIVE-C 200); None: epochs
    zero_shot_images: str = "test"  # zero-shot: test (each split's test side) | all (every labelled image, one run)
    # --- how the frozen encoder sees an image (features, exact mode and `uniqa score` alike)
    decode_size: int | None = None  # shorter side resized to this before the views (None: the dataset's: SPAQ 448)
    pos_embedding: bool = True  # False: the image tower without its positional embedding (the reference ensemble head)
    # --- execution
    runner: str = "ray"  # ray: runs in parallel as Ray tasks | local: one after another in this process
    cpus_per_run: float = 1.0  # CPUs per Ray task
    threads: int | None = None  # torch threads per run (None: the thread policy, uniqa.runtime)
    views_per_pass: int = 64  # encoder chunk (features and exact mode: the same, so the features are the same)
    device: str = "cpu"  # exact mode's encoder device: cpu | cuda
    save_adapters: bool = True  # write OUT/adapters/<run>/ (the clean epoch's head), loadable by `uniqa score`
    # go on when test-side images are in the model's pre-training corpus (uniqa.provenance), the overlap recorded
    allow_leak: bool = False

    def __post_init__(self):
        if not self.model:
            raise UniqaError("no model: pass --model NAME_OR_CHECKPOINT or set model in the config")
        for field, value, valid in (("head", self.head, HEADS), ("protocol", self.protocol, PROTOCOLS),
                                    ("mode", self.mode, MODES), ("runner", self.runner, RUNNERS),
                                    ("device", self.device, ("cpu", "cuda")),
                                    ("zero_shot_images", self.zero_shot_images, ZERO_SHOT_IMAGES)):
            if value not in valid:
                raise UniqaError(f"{field} must be one of {list(valid)}, got {value!r}")
        if self.zero_shot_images == "all" and self.protocol != "zero-shot":
            raise UniqaError(f"zero_shot_images=all applies to protocol zero-shot, got protocol {self.protocol}")
        if self.prompt_set is not None:
            from uniqa.adapters.prompts import get_prompt_set

            get_prompt_set(self.prompt_set)
        for field in ("epochs", "batch_size", "views_per_pass"):
            _positive_int(field, getattr(self, field))
        if self.threads is not None:
            _positive_int("threads", self.threads)
        for field in ("train_views", "val_every", "decode_size"):
            if getattr(self, field) is not None:
                _positive_int(field, getattr(self, field))
        if not isinstance(self.pos_embedding, bool):
            raise UniqaError(f"pos_embedding must be true or false, got {self.pos_embedding!r}")
        for field in ("splits", "few_label_sizes", "few_label_seeds"):
            value = getattr(self, field)
            value = (value,) if isinstance(value, int) else tuple(value)
            object.__setattr__(self, field, value)
            if not value or any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in value):
                raise UniqaError(f"{field} must be a non-empty list of non-negative integers, got {list(value)}")
        bad = [s for s in self.splits if s > 9]
        if bad:
            raise UniqaError(f"splits are split_0 .. split_9, got {bad[0]}")
        if any(n < 3 for n in self.few_label_sizes):
            raise UniqaError(f"few_label_sizes must be >= 3 images, got {list(self.few_label_sizes)}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise UniqaError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise UniqaError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if not (isinstance(self.val_fraction, (int, float)) and 0 < self.val_fraction < 1):
            raise UniqaError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if not (isinstance(self.val_min_images, int) and not isinstance(self.val_min_images, bool)
                and self.val_min_images >= 0):
            raise UniqaError(f"val_min_images must be an integer >= 0, got {self.val_min_images!r}")
        if not (isinstance(self.cpus_per_run, (int, float)) and self.cpus_per_run >= 0):
            raise UniqaError(f"cpus_per_run must be a number >= 0, got {self.cpus_per_run!r}")

    @property
    def views(self) -> int:
        """K: cached training views per image."""
        return self.train_views or self.epochs

    @property
    def trained_prompt_set(self) -> str:
        return self.prompt_set or self.head

    @property
    def zero_shot_prompt_sets(self) -> tuple[str, str]:
        """The single prompt group and the 4-group ensemble of ``head`` (METHOD §4)."""
        return self.head, f"{self.head}-ensemble"


def _positive_int(field: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UniqaError(f"{field} must be a positive integer, got {value!r}")
