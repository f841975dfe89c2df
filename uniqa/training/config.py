"""``PretrainConfig``: what to pre-train (model, corpus sampling, views), how (optimiser, schedule) and where
(workers, resources, checkpoints). Defaults are the CPU demo recipe of METHOD §2 (uniqa-small, 64 px, lr 1e-3,
level-prompt texts on); ``cluster/pretrain-official.yaml`` reproduces the official ``train.py`` (view
``clip_preprocess``, ``adam_l2``, ``constant`` lr, ``uniform`` texts) and ``cluster/pretrain.yaml`` is our paper-scale
recipe. Checks here are types and ranges only; storage and model checks run in
:func:`uniqa.training.run.preflight`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from uniqa.errors import UniqaError

# random crop of the un-resized image | resize the short side, then a random crop | CLIP's preprocess: resize the
# short side (bicubic), centre crop (the official UniQA train.py's view)
VIEWS = ("crop", "resize_crop", "clip_preprocess")
TEXT_CHOICES = ("by_source", "uniform")  # a source by its weight, then a text of it | any text of the image, uniformly
OPTIMIZERS = ("adamw", "adam_l2")  # AdamW, decay on matrices only | Adam with coupled L2 on every parameter
SCHEDULES = ("cosine", "constant")  # after the linear warm-up: cosine to min_lr | lr throughout
PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 autocast on GPU, fp32 on CPU


# where and how the run executes, not what it trains: left out of the run identity. num_workers too: a run may
# resume with other workers (each rank then restarts after the smallest resume key: uniqa.training.ingest). name
# stays in: the checkpoints a rerun resumes from are under RUN/<name> (another name would start over beside them)
EXECUTION = ("num_workers", "use_gpu", "cpus_per_worker", "gpus_per_worker", "decode_cpus", "decode_cache_mb",
             "threads", "checkpoint_every", "keep_checkpoints", "max_failures", "log_every")


@dataclass(frozen=True)
class SourceWeights:
    """Relative chance of each text source when one text per image is drawn for an epoch (a source the image
    has no text of is left out; 0 switches a source off)."""

    quality_caption: float = 1.0
    aesthetics_caption: float = 1.0
    comment: float = 1.0
    level_prompt: float = 1.0  # "{level} image" texts: needed by a random-init text tower (METHOD §2)

    def __post_init__(self):
        values = self.as_dict()
        for name, value in values.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise UniqaError(f"sources.{name} must be a number >= 0, got {value!r}")
        if not any(values.values()):
            raise UniqaError(f"sources: at least one weight must be > 0, got {values}")

    def as_dict(self) -> dict[str, float]:
        return {"quality_caption": self.quality_caption, "aesthetics_caption": self.aesthetics_caption,
                "comment": self.comment, "level_prompt": self.level_prompt}


@dataclass(frozen=True)
class PretrainConfig:
    # model
    model: str = "uniqa-small"  # architecture name or our checkpoint folder (its config names the model)
    pretrained: str | None = None  # initial weights: checkpoint / OpenAI-format .pt (None: random init)
    lock_image: bool = False  # freeze the image tower (open_clip lock_image_tower)
    lock_text: bool = False  # freeze the text tower (open_clip lock_text_tower)
    # data
    sources: SourceWeights = field(default_factory=SourceWeights)
    view: str = "crop"  # crop | resize_crop | clip_preprocess (see VIEWS)
    flip: bool = True  # random horizontal flip
    text_choice: str = "by_source"  # by_source | uniform (see TEXT_CHOICES; sources with weight 0 are off in both)
    max_pixels: int = 120_000_000  # decompression-bomb limit per image
    # decoded images kept per Ray Data worker process (LRU): a corpus that fits is decoded once, not every epoch
    decode_cache_mb: float = 256.0
    # optimisation
    batch_size: int = 64  # global: images per optimiser step over all workers (and accumulation steps)
    epochs: int = 1  # passes over the corpus images (ignored when steps is set)
    steps: int | None = None  # total optimiser steps (the stream cycles through as many epochs as needed)
    optimizer: str = "adamw"  # adamw | adam_l2 (see OPTIMIZERS)
    lr: float = 1e-3
    weight_decay: float = 0.1  # adamw: decoupled, not on gains, biases, logit_scale; adam_l2: L2 in the gradient
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    warmup_steps: int = 50  # linear warm-up, then the schedule
    schedule: str = "cosine"  # cosine (decay to min_lr) | constant (see SCHEDULES)
    min_lr: float = 0.0
    grad_clip: float | None = 1.0  # max global gradient norm (None: no clipping)
    accumulation: int = 1  # micro-batches per optimiser step (negatives come from one micro-batch)
    max_logit_scale: float = 100.0  # exp(logit_scale) is clamped to at most this after each step
    precision: str = "auto"  # auto | fp32 | bf16
    seed: int = 0  # model init, text sampling, crops and epoch order
    # run
    name: str = "train"  # Ray Train run name: checkpoints under OUT/<name>/
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0  # < 1 on a small test box (two workers on 2 CPUs: 0.5, see ENVIRONMENT.md)
    gpus_per_worker: float = 1.0  # with use_gpu
    decode_cpus: float = 1.0  # CPUs per Ray Data decode + view task
    threads: int | None = None  # torch threads per worker (None: the thread policy, its cpus_per_worker)
    checkpoint_every: int = 100  # steps between checkpoints (the last step is always checkpointed)
    keep_checkpoints: int = 2  # checkpoints kept by Ray Train (the newest)
    max_failures: int = 1  # worker-group restarts from the last checkpoint before the run fails
    log_every: int = 10  # steps between metrics-log flushes (every step is logged)

    def __post_init__(self):
        for name in ("batch_size", "epochs", "accumulation", "num_workers", "checkpoint_every", "keep_checkpoints",
                     "log_every", "max_pixels"):
            _positive_int(name, getattr(self, name))
        for name in ("steps", "threads"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        for name in ("warmup_steps", "max_failures", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise UniqaError(f"{name} must be an integer >= 0, got {value!r}")
        for name in ("lr", "max_logit_scale", "eps", "cpus_per_worker"):
            _number(name, getattr(self, name), positive=True)
        for name in ("weight_decay", "min_lr", "gpus_per_worker", "decode_cpus", "decode_cache_mb"):
            _number(name, getattr(self, name))
        if self.grad_clip is not None:
            _number("grad_clip", self.grad_clip, positive=True)
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise UniqaError(f"{name} must be in [0, 1), got {value!r}")
        if self.min_lr > self.lr:
            raise UniqaError(f"min_lr {self.min_lr} is above lr {self.lr}")
        for name, valid in (("view", VIEWS), ("text_choice", TEXT_CHOICES), ("optimizer", OPTIMIZERS),
                            ("schedule", SCHEDULES)):
            if getattr(self, name) not in valid:
                raise UniqaError(f"{name} must be one of {list(valid)}, got {getattr(self, name)!r}")
        if self.precision not in PRECISIONS:
            raise UniqaError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if self.precision == "bf16" and not self.use_gpu:
            raise UniqaError("precision bf16 is for GPUs (use_gpu: true); on CPU use fp32 or auto")
        if self.batch_size % (self.num_workers * self.accumulation):
            raise UniqaError(f"batch_size {self.batch_size} must be divisible by num_workers x accumulation = "
                             f"{self.num_workers} x {self.accumulation}")
        if self.lock_image and self.lock_text:
            raise UniqaError("lock_image and lock_text are both set: nothing would be trained")
        if not self.name or "/" in self.name:
            raise UniqaError(f"name must be a non-empty folder name, got {self.name!r}")

    @property
    def micro_batch(self) -> int:
        """Images per worker per forward pass."""
        return self.batch_size // (self.num_workers * self.accumulation)


def _positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UniqaError(f"{name} must be a positive integer, got {value!r}")


def _number(name: str, value, positive: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or (positive and value == 0):
        raise UniqaError(f"{name} must be a number {'> 0' if positive else '>= 0'}, got {value!r}")
