"""Pretrain sweeps (``kind: pretrain``): each trial fits its own ``TorchTrainer`` (``run_pretrain`` into
``RUN/trials/<trial_id>``) and reports its final loss and, given a manifest, the zero-shot SRCC of its checkpoint
on the test side of ``split``: the level-prompt ensemble of ``zero_shot_head`` (METHOD §4), no adapter, measured
with ``uniqa adapt --set protocol=zero-shot --set mode=exact`` into ``RUN/trials/<trial_id>/zero-shot``. The loss
carries no quality signal (METHOD §2); the held-out SRCC does, so the shipped sweep picks on it. The best trial's
checkpoint is named in ``RUN/best.yaml`` (``checkpoint:``).

The pre-flight refuses a manifest whose test side is in the corpus: a sweep that picks on images pre-training saw
picks the run that memorised them best (no ``--allow-leak`` here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from uniqa import storage
from uniqa.errors import UniqaError
from uniqa.runtime import policy_threads
from uniqa.training.config import EXECUTION
from uniqa.tuning.config import TuneConfig

ZERO_SHOT = "zero-shot"  # RUN/trials/<trial_id>/zero-shot: the uniqa adapt output of the trial's checkpoint


@dataclass
class PretrainSweep:
    """The pretrain kind of :class:`uniqa.tuning.sweep.SweepKind`; made by :meth:`preflight`."""

    execution: ClassVar[tuple[str, ...]] = EXECUTION  # of the base config: not in the sweep's identity
    cfg: TuneConfig
    base: object  # the base PretrainConfig
    manifest: str | None
    corpus: str

    @classmethod
    def preflight(cls, manifest: str | None, features: str | None, corpus: str | None, cfg: TuneConfig):
        """The base PretrainConfig, after every check of the corpus, the search space's values and (given) the
        manifest: its columns, a labelled test side of ``split``, none of it in the corpus."""
        from uniqa.config import from_dict
        from uniqa.training.config import PretrainConfig
        from uniqa.training.run import preflight as pretrain_preflight

        if not corpus:
            raise UniqaError("a pretrain sweep needs --corpus (or `corpus:` in the sweep file)")
        probe = {**cfg.base, **{k: _probe(v) for k, v in cfg.search_space.items()}}
        base = from_dict(PretrainConfig, dict(cfg.base), "base")
        pretrain_preflight(corpus, "", from_dict(PretrainConfig, probe, "search_space"))
        if cfg.metric == "zero_shot_srcc" and not manifest:
            raise UniqaError("metric zero_shot_srcc needs --manifest (or `manifest:` in the sweep file): the "
                             f"labelled images whose split_{cfg.split} test side each trial's checkpoint is scored on")
        if manifest:
            check_held_out(manifest, corpus, cfg.split)
        return cls(cfg, base, manifest, corpus)

    def trainable(self, out: str, progress: bool, address: str | None):
        from ray import tune

        data = {"base": dict(self.cfg.base), "out": out, "corpus": self.corpus, "manifest": self.manifest,
                "split": self.cfg.split, "head": self.cfg.zero_shot_head}  # plain data: it travels to the trials
        return tune.with_parameters(pretrain_trial, data=data)

    def stopped_early(self, config: dict, epochs_run: int) -> bool:
        return False  # a trial reports once, at its end

    def export(self, best: dict, config: dict, out: str) -> tuple[dict, None]:
        return {"checkpoint": storage.join(out, "trials", best["trial_id"], "final")}, None

    def details(self) -> dict:
        """torch threads of a trial's Train workers (the thread policy: their reserved CPUs)."""
        return {"threads": policy_threads(self.base.threads, cpus=self.base.cpus_per_worker), "leak": None}


def test_side(manifest: str, split: int) -> list[str]:
    """The labelled image ids on the test side of ``split_<split>``."""
    import pyarrow.compute as pc

    from uniqa.tables import dataset_schema, parquet_files, read_columns

    files = parquet_files(manifest)
    names = dataset_schema(files).names
    for column in ("image_id", "mos_norm", f"split_{split}"):
        if column not in names:
            raise UniqaError(f"manifest {manifest} has no column {column!r}; found {names}")
    table = read_columns(files, ["image_id"],
                         filter=pc.field("mos_norm").is_valid() & (pc.field(f"split_{split}") == "test"))
    if len(table) < 3:
        raise UniqaError(f"manifest {manifest} has {len(table)} labelled images on the test side of split_{split}: "
                         "a zero-shot SRCC needs at least 3")
    return table["image_id"].to_pylist()


def check_held_out(manifest: str, corpus: str, split: int) -> int:
    """The number of test-side images (``split``) of ``manifest``; raises if any is in ``corpus``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from uniqa.tables import parquet_files, read_columns

    ids = pa.array(test_side(manifest, split), pa.string())
    seen = read_columns(parquet_files(corpus), ["image_id"])["image_id"]
    leaked = pc.filter(ids, pc.is_in(ids, value_set=pc.unique(seen))).to_pylist()
    if leaked:
        raise UniqaError(f"{len(leaked)} of the {len(ids)} test-side images of split_{split} of manifest {manifest} "
                         f"(e.g. {', '.join(leaked[:3])}) are in corpus {corpus}: the sweep would pick the run that "
                         f"memorised them. Build the corpus with `--set holdout=split_{split}`")
    return len(ids)


def _probe(spec):
    """A representative value of a search-space entry (for the pre-flight's config checks)."""
    if not isinstance(spec, dict):
        return spec
    kind, arg = next(iter(spec.items()))
    if kind in ("choice", "grid"):
        return arg[0]
    return int(arg[0]) if kind == "randint" else float(arg[0])


def pretrain_trial(config: dict, data: dict) -> None:
    """A Tune function trainable: fit a TorchTrainer (``run_pretrain``), report its losses and, given a manifest,
    its held-out zero-shot SRCC."""
    import ray
    from ray import tune
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    from uniqa.config import from_dict
    from uniqa.training.config import PretrainConfig
    from uniqa.training.metrics import read_metrics
    from uniqa.training.run import run_pretrain

    cfg = from_dict(PretrainConfig, {**data["base"], **config})
    run = storage.join(data["out"], "trials", tune.get_context().get_trial_id())
    # Tune puts a trial's child tasks into its placement group, where Ray Data's and Train's own tasks and actors
    # do not fit: the run's driver is a task outside it (its workers ask for their own resources)
    escape = PlacementGroupSchedulingStrategy(placement_group=None)
    task = ray.remote(run_pretrain).options(num_cpus=0, scheduling_strategy=escape, max_retries=0)
    summary = ray.get(task.remote(data["corpus"], run, cfg, progress=False))
    losses = [record["loss"] for record in read_metrics(run)]
    tail = losses[-max(1, len(losses) // 10):]
    report = {"epoch": 1, "loss": losses[-1], "final_loss": float(np.mean(tail)),
              "images_per_s": summary.details.get("images_per_s", float("nan"))}
    if data["manifest"]:
        report["zero_shot_srcc"] = zero_shot_srcc(storage.join(run, "final"), data, cfg.seed)
    tune.report(report)


def zero_shot_srcc(checkpoint: str, data: dict, seed: int) -> float:
    """The SRCC of ``checkpoint``'s level-prompt ensemble on the test side of ``data["split"]`` (exact mode: the
    test-side images alone are encoded, in this process, on its CPU)."""
    from uniqa.adapters.config import AdaptConfig
    from uniqa.adapters.run import run_adapt

    cfg = AdaptConfig(model=checkpoint, head=data["head"], protocol="zero-shot", splits=(data["split"],),
                      mode="exact", runner="local", seed=seed)
    out = storage.join(checkpoint.rstrip("/").rsplit("/", 1)[0], ZERO_SHOT)
    summary = run_adapt(data["manifest"], None, out, cfg, progress=False)
    row = next(r for r in summary.details["summary"] if r["prompt_set"] == f"{data['head']}-ensemble")
    return float(row["srcc_median"])
