"""``TuneConfig``: one sweep as data (a ``tuning/<sweep>.yaml`` file): what is trained (``kind``, ``base``), the
search space, the scheduler, the metric and mode, the number of trials, the concurrency and each trial's
resources. Types, names and ranges only here; storage (manifest, features, corpus, model) is checked in
:func:`uniqa.tuning.sweep.preflight` (each kind's) before any trial starts.

A search-space entry is a fixed value or one of (bounds as numbers; ``1e-4`` is read as a number)::

    lr: {loguniform: [1.0e-4, 1.0e-2]}     # also uniform: [a, b]
    epochs: {choice: [4, 8]}               # sampled; grid: [...] runs every value (x num_samples)
    batch_size: {randint: [4, 17]}         # integers in [a, b)
    prompt_set: {choice: [single, ensemble]}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from uniqa.errors import UniqaError

KINDS = ("adapter", "pretrain")
SPECS = ("choice", "grid", "uniform", "loguniform", "randint")
SCHEDULERS = ("asha", "fifo")
MODES = ("max", "min")
# what an adapter trial may vary (METHOD §3 recipe + the head): hidden is the adapter bottleneck width, prompt_set
# is single | ensemble (or a prompt-set name), train_views the number K of cached training views used
ADAPTER_PARAMS = ("lr", "epochs", "weight_decay", "batch_size", "hidden", "prompt_set", "train_views")
# what each kind's trials report (to ray.tune) every epoch / at the end: a metric outside these is an error
REPORTED = {
    "adapter": ("val_srcc", "val_plcc", "val_krcc", "loss"),
    "pretrain": ("loss", "final_loss", "images_per_s", "zero_shot_srcc"),  # the last: given a manifest
}
PRETRAIN_FIXED = ("name", "num_workers", "use_gpu", "cpus_per_worker", "gpus_per_worker")


@dataclass(frozen=True)
class SchedulerConfig:
    kind: str = "asha"  # asha: ASHAScheduler on ``metric`` (stops weak trials early) | fifo: every trial runs out
    max_t: int = 8  # ASHA: the most epochs (training_iteration) a trial gets
    grace_period: int = 1  # ASHA: epochs before a trial can be stopped
    reduction_factor: float = 2.0  # ASHA: keep 1 / reduction_factor of the trials at each rung

    def __post_init__(self):
        if self.kind not in SCHEDULERS:
            raise UniqaError(f"scheduler.kind must be one of {list(SCHEDULERS)}, got {self.kind!r}")
        for name in ("max_t", "grace_period"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UniqaError(f"scheduler.{name} must be a positive integer, got {value!r}")
        if self.grace_period > self.max_t:
            raise UniqaError(f"scheduler.grace_period {self.grace_period} is above max_t {self.max_t}")
        if not isinstance(self.reduction_factor, (int, float)) or self.reduction_factor <= 1:
            raise UniqaError(f"scheduler.reduction_factor must be a number > 1, got {self.reduction_factor!r}")


@dataclass(frozen=True)
class TuneConfig:
    kind: str = "adapter"  # adapter: heads on cached features | pretrain: a TorchTrainer (uniqa pretrain) per trial
    base: dict = field(default_factory=dict)  # fixed settings: AdaptConfig keys (adapter) / PretrainConfig keys
    search_space: dict = field(default_factory=dict)  # hyperparameter -> value or {choice|grid|...: ...}
    split: int = 0  # adapter: the manifest split whose train side is swept (val carved from it); its test side is
    # used only for the best trial's final numbers. pretrain: its test side scores each trial's zero-shot SRCC
    zero_shot_head: str = "quality"  # pretrain: the level-prompt family of that zero-shot SRCC (quality | aesthetics)
    metric: str = "val_srcc"  # what the scheduler and the best-trial choice look at (see REPORTED)
    mode: str = "max"  # max | min
    num_samples: int = 8  # trials (x the grid's size when the space has grid entries)
    max_concurrent: int = 2  # trials running at once
    resources: dict = field(default_factory=lambda: {"cpu": 1})  # per trial (a pretrain trial's Train workers
    # ask for their own: base.cpus_per_worker)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    seed: int = 0  # the search algorithm's seed: the same file draws the same trials
    name: str = "sweep"  # Tune experiment folder under OUT

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UniqaError(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        if self.mode not in MODES:
            raise UniqaError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        if not isinstance(self.search_space, dict) or not self.search_space:
            raise UniqaError("empty search space: set search_space with at least one hyperparameter, e.g. "
                             "search_space: {lr: {loguniform: [1.0e-4, 1.0e-2]}}")
        if not isinstance(self.base, dict):
            raise UniqaError(f"base must be a mapping of fixed settings, got {self.base!r}")
        valid = self.valid_params()
        for name, spec in self.search_space.items():
            if name not in valid:
                raise UniqaError(f"unknown hyperparameter {name!r} in search_space; valid for kind {self.kind}: "
                                 f"{sorted(valid)}")
            check_spec(name, spec)
        if self.metric not in REPORTED[self.kind]:
            raise UniqaError(f"metric {self.metric!r} is not reported by {self.kind} trials; they report "
                             f"{list(REPORTED[self.kind])}")
        for name in ("num_samples", "max_concurrent"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UniqaError(f"{name} must be a positive integer, got {value!r}")
        if self.zero_shot_head not in ("quality", "aesthetics"):
            raise UniqaError(f"zero_shot_head must be quality or aesthetics, got {self.zero_shot_head!r}")
        if not isinstance(self.split, int) or not 0 <= self.split <= 9:
            raise UniqaError(f"split must be 0 .. 9 (split_0 .. split_9), got {self.split!r}")
        if not isinstance(self.resources, dict) or any(
                not isinstance(v, (int, float)) or v < 0 for v in self.resources.values()):
            raise UniqaError(f"resources must map a resource to a number >= 0, e.g. {{cpu: 1}}, got "
                             f"{self.resources!r}")
        if not any(self.resources.values()):
            raise UniqaError(f"resources must ask for something > 0 (Tune cannot place an empty trial), e.g. "
                             f"{{cpu: 0.1}}, got {self.resources!r}")
        if not self.name or "/" in self.name:
            raise UniqaError(f"name must be a non-empty folder name, got {self.name!r}")

    def valid_params(self) -> tuple[str, ...]:
        if self.kind == "adapter":
            return ADAPTER_PARAMS
        from uniqa.training.config import PretrainConfig

        return tuple(f.name for f in dataclasses.fields(PretrainConfig) if f.name not in PRETRAIN_FIXED)

    def planned_trials(self) -> int:
        """The trials the sweep runs: ``num_samples`` x the size of every grid entry (Tune's count)."""
        count = self.num_samples
        for spec in self.search_space.values():
            if isinstance(spec, dict) and next(iter(spec)) == "grid":
                count *= len(spec["grid"])
        return count

    def values(self, name: str) -> list:
        """Every value ``name`` can take when it is discrete (fixed, choice, grid); [] for a range."""
        spec = self.search_space.get(name)
        if not isinstance(spec, dict):
            return [] if spec is None else [spec]
        kind, arg = next(iter(spec.items()))
        return list(arg) if kind in ("choice", "grid") else []


def check_spec(name: str, spec) -> None:
    if not isinstance(spec, dict):
        return  # a fixed value
    if len(spec) != 1 or next(iter(spec)) not in SPECS:
        raise UniqaError(f"search_space.{name} must be a value or one of {{{' | '.join(SPECS)}: ...}}, got {spec!r}")
    kind, arg = next(iter(spec.items()))
    if kind in ("choice", "grid"):
        if not isinstance(arg, list) or not arg:
            raise UniqaError(f"search_space.{name}.{kind} must be a non-empty list, got {arg!r}")
        return
    try:
        low, high = (float(v) for v in arg)
    except (TypeError, ValueError):
        raise UniqaError(f"search_space.{name}.{kind} must be [low, high] numbers, got {arg!r}") from None
    if not low < high or (kind == "loguniform" and low <= 0):
        raise UniqaError(f"search_space.{name}.{kind} needs {'0 < ' if kind == 'loguniform' else ''}low < high, "
                         f"got {arg!r}")
