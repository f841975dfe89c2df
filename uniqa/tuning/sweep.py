"""``run_tune``: a Ray Tune sweep defined as data (``tuning/<sweep>.yaml``, :class:`TuneConfig`) -> ``RUN/``.

This package holds all the Ray Tune code of uniqa (ARCHITECTURE: "Ray Tune only in tuning/ and its runner"); the
top-level ``tuning/`` folder holds only the sweep files (data) and ``tuning/run.py``, the ``ray job submit``
entry point that forwards to ``uniqa tune``.

What every sweep shares is here: the Tuner (search space, scheduler, concurrency limit, restore), the ledger, the
table of trials, the best-trial choice (errored trials filtered out here: ``get_best_result`` may pick one) and
``RUN/best.yaml``. What a trial trains, on what, and what the best trial leaves besides is a sweep kind's
(:class:`SweepKind`, one module each): :mod:`uniqa.tuning.adapter` (heads on cached features, reporting validation
SRCC every epoch) and :mod:`uniqa.tuning.pretrain` (a ``TorchTrainer`` per trial, reporting its zero-shot SRCC).

Layout of ``RUN`` (local or ``s3://``):
- ``RUN/<name>/``: Tune's experiment (rerunning the same command restores it with ``resume_errored=True``:
  trials its saved state holds as finished are not run again (the state is saved after every controller step,
  uploaded every 10 s to s3://: a trial that finished in the moment before a kill can run again); interrupted
  trials restart from epoch 1; errored ones are retried; ASHA's rungs are not restored, a resumed sweep's
  scheduler starts empty);
- ``RUN/_ledger/``: one empty file per trial start / completion / error (written by the driver): how many times
  each trial started, and which finished before this run (the summary's ``already_done``), across reruns;
- ``RUN/results.{parquet,csv}``: one row per trial (config, best metric, epochs run, stopped early, seconds,
  error, starts), also printed;
- ``RUN/best.yaml``: the best trial's config, and what its kind adds (pretrain: ``checkpoint``); adapter sweeps
  also write ``RUN/best/`` (its adapter: ``uniqa score --heads quality=RUN/best``) and ``RUN/test.json``;
- ``RUN/_run.json``: the sweep's identity (:func:`identity`: the sweep as defined, not how it runs), pinned by the
  first run; a rerun with another one is refused (:func:`uniqa.executor.execute`): Tune's restore would go on with
  the saved sweep and the ledger would count another experiment's trials.

The pre-flight (:func:`preflight`) checks the sweep and its inputs before any Ray work; the work (:func:`work`)
runs the Tuner (restored when ``RUN`` holds its experiment) in one Ray session, then the table and the export.

The summary counts trials: ``rows_in`` the sweep's planned trials, ``rows_out`` those that ended without an error.
An errored trial leaves the sweep INCOMPLETE (exit 1): a rerun retries it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import ClassVar, Protocol

from uniqa import storage
from uniqa.stage import Outcome, Plan, Run, StageSummary, json_value
from uniqa.tuning.adapter import AdapterSweep
from uniqa.tuning.config import TuneConfig
from uniqa.tuning.ledger import TRIAL_ID, finished_before, ledger_callback, read_ledger, trial_number
from uniqa.tuning.pretrain import PretrainSweep


class SweepKind(Protocol):
    """One kind of sweep (``TuneConfig.kind``). ``Kind.preflight(manifest, features, corpus, cfg)`` runs every
    check that touches storage or the model, before any Ray work, and returns the kind ready to run;
    ``Kind.execution`` names the keys of its ``base`` config that say how a trial runs, not what it finds (left out
    of the sweep's identity)."""

    execution: ClassVar[tuple[str, ...]]

    def trainable(self, out: str, progress: bool, address: str | None) -> Callable:
        """The Tune function trainable with its data bound (``tune.with_parameters``); Ray is up."""

    def stopped_early(self, config: dict, epochs_run: int) -> bool:
        """Whether a trial that ended without an error was stopped by the scheduler."""

    def export(self, best: dict, config: dict, out: str) -> tuple[dict, dict | None]:
        """What the best trial leaves besides ``RUN/best.yaml`` -> (keys added to best.yaml, test numbers)."""

    def details(self) -> dict:
        """The kind's figures in the summary's details (``threads``, ``leak``)."""


KINDS: dict[str, type] = {"adapter": AdapterSweep, "pretrain": PretrainSweep}
EXECUTION = ("max_concurrent", "resources")  # how the sweep runs, not what it finds: left out of its identity


@dataclass(kw_only=True)
class TunePlan(Plan):
    """What the pre-flight found: the sweep's kind, ready to run."""

    sweep: SweepKind


def preflight(manifest: str | None, features: str | None, corpus: str | None, out: str,
              cfg: TuneConfig) -> TunePlan:
    """The sweep's kind, after every check that touches storage or the model (no Ray, no trial, nothing written);
    local inputs are made absolute (Tune runs trials in directories of their own). The identity: :func:`identity`."""
    manifest, features, corpus = (None if uri is None else storage.absolute(uri)
                                  for uri in (manifest, features, corpus))
    sweep = KINDS[cfg.kind].preflight(manifest, features, corpus, cfg)
    return TunePlan(inputs={"manifest": manifest, "features": features, "corpus": corpus}, identity=identity(cfg),
                    sweep=sweep)


def identity(cfg: TuneConfig) -> dict:
    """What a sweep's results depend on (``RUN/_run.json``), as JSON values: the sweep as defined (kind, search
    space, split, metric, mode, trials, scheduler, seed, the experiment's name) and its ``base`` without the
    execution knobs of its kind's config; not how it runs (:data:`EXECUTION`)."""
    values = {k: v for k, v in asdict(cfg).items() if k not in EXECUTION}
    values["base"] = {k: v for k, v in cfg.base.items() if k not in KINDS[cfg.kind].execution}
    return json.loads(json.dumps(values, default=str))


def param_space(cfg: TuneConfig) -> dict:
    from ray import tune

    space = {}
    for name, spec in cfg.search_space.items():
        if not isinstance(spec, dict):
            space[name] = spec
            continue
        kind, arg = next(iter(spec.items()))
        if kind == "choice":
            space[name] = tune.choice(list(arg))
        elif kind == "grid":
            space[name] = tune.grid_search(list(arg))
        elif kind == "randint":
            space[name] = tune.randint(int(arg[0]), int(arg[1]))
        else:
            space[name] = getattr(tune, kind)(float(arg[0]), float(arg[1]))
    return space


# ---------------------------------------------------------------- the ledger




def _tuner(trainable, cfg: TuneConfig, out: str, progress: bool):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    # Tune saves its experiment state (trial statuses) at most every 10 s by default, and uploads it to remote
    # storage every 5 min: a killed driver would then rerun every trial that finished since. The state is small:
    # save it after every controller step (override: TUNE_GLOBAL_CHECKPOINT_S) and upload it every 10 s (s3://).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
    if not progress:  # Tune's new console output prints its header box even at verbose=0
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    fs, path = storage.ray_storage(out)
    experiment = f"{path.rstrip('/')}/{cfg.name}"
    if tune.Tuner.can_restore(experiment, storage_filesystem=fs):
        return tune.Tuner.restore(experiment, trainable, resume_errored=True, storage_filesystem=fs), True
    s = cfg.scheduler
    scheduler = (ASHAScheduler(time_attr="training_iteration", max_t=s.max_t, grace_period=s.grace_period,
                               reduction_factor=s.reduction_factor) if s.kind == "asha" else FIFOScheduler())
    search = BasicVariantGenerator(max_concurrent=cfg.max_concurrent, random_state=cfg.seed)  # the concurrency limit
    # reuse_actors: a finished trial's actor runs the next one (same resources), so a trial does not pay a process
    # start and the torch + open_clip import: 8 short adapter trials on 2 CPUs took 61 s without, 22 s with (the
    # same results: each trial seeds itself from its config)
    tune_config = tune.TuneConfig(metric=cfg.metric, mode=cfg.mode, num_samples=cfg.num_samples,
                                  scheduler=scheduler, search_alg=search, reuse_actors=True)
    run_config = tune.RunConfig(name=cfg.name, storage_path=path, storage_filesystem=fs,
                                callbacks=[ledger_callback(out)], verbose=1 if progress else 0,
                                sync_config=tune.SyncConfig(sync_period=10),
                                failure_config=tune.FailureConfig(max_failures=0))
    return tune.Tuner(trainable, param_space=param_space(cfg), tune_config=tune_config, run_config=run_config), False


def _rows(results, cfg: TuneConfig, sweep: SweepKind, ledger: dict) -> list[dict]:
    """One row per trial: id, number, the sampled config, best metric, epochs run, stopped early, seconds, error."""
    rows = []
    for result in results:
        metrics = result.metrics or {}
        found = TRIAL_ID.search(metrics.get("trial_id") or str(result.path).rstrip("/").rsplit("/", 1)[-1])
        trial_id = metrics.get("trial_id") or (found.group(1) if found else "?")
        frame = result.metrics_dataframe
        values = ([] if frame is None or cfg.metric not in frame else
                  [v for v in frame[cfg.metric].tolist() if v is not None and not math.isnan(v)])
        epochs = int(frame["epoch"].max()) if frame is not None and "epoch" in frame and len(frame) else 0
        best = (max(values) if cfg.mode == "max" else min(values)) if values else float("nan")
        error = None if result.error is None else f"{type(result.error).__name__}: {_message(result.error)}"
        rows.append({"trial_id": trial_id, "trial": trial_number(trial_id) if found or "_" in trial_id else -1,
                     **{f"config_{k}": result.config.get(k) for k in cfg.search_space},
                     f"best_{cfg.metric}": best, "epochs_run": epochs,
                     "stopped_early": error is None and sweep.stopped_early(result.config, epochs),
                     "seconds": float(metrics.get("time_total_s", float("nan"))), "error": error,
                     "starts": ledger.get(trial_id, {}).get("start", 0)})
    return sorted(rows, key=lambda r: r["trial"])


def _message(error: BaseException) -> str:
    """The trial's own exception message out of Tune's wrapper: the text after the last ``...Error: `` line,
    else its last non-empty line."""
    lines = [line.strip() for line in str(error).strip().split("\n") if line.strip()]
    for line in reversed(lines):
        if "Error: " in line:
            return line.split("Error: ", 1)[-1]
    return lines[-1] if lines else repr(error)


def pick_best(rows: list[dict], cfg: TuneConfig) -> dict | None:
    """The best trial among those that did not error and reported the metric (never an errored trial)."""
    key = f"best_{cfg.metric}"
    good = [r for r in rows if r["error"] is None and not math.isnan(r[key])]
    if not good:
        return None
    return (max if cfg.mode == "max" else min)(good, key=lambda r: (r[key], -r["trial"]))


def format_table(rows: list[dict], cfg: TuneConfig) -> str:
    cols = ["trial", *(f"config_{k}" for k in cfg.search_space), f"best_{cfg.metric}", "epochs_run",
            "stopped_early", "seconds", "starts", "error"]

    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "-" if v is None else str(v)

    table = [[c.removeprefix("config_") for c in cols]] + [[cell(r[c]) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) if cols[i] != "error" else 0 for i in range(len(cols))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in table]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def _export(best: dict, cfg: TuneConfig, sweep: SweepKind, out: str) -> dict | None:
    """RUN/best.yaml (the best trial's config and what its kind adds) after the kind's own export; -> the
    kind's test numbers (or None)."""
    import yaml

    config = {k.removeprefix("config_"): v for k, v in best.items() if k.startswith("config_")}
    added, test = sweep.export(best, config, out)
    record = {"trial": best["trial"], "trial_id": best["trial_id"], "metric": cfg.metric,
              "value": best[f"best_{cfg.metric}"], "epochs_run": best["epochs_run"], "kind": cfg.kind,
              "base": dict(cfg.base), "config": config, **added}
    plain = json.loads(json.dumps(record, default=json_value))
    storage.write_bytes(storage.join(out, "best.yaml"), yaml.safe_dump(plain, sort_keys=False).encode())
    return test


def work(plan: TunePlan, out: str, cfg: TuneConfig, run: Run) -> Outcome:
    """Run (or resume) the sweep into ``out`` in one Ray session, then the table of trials, the best trial's export
    and its line; see the module docstring for the layout."""
    from ray import tune

    from uniqa.adapters.results import write_rows

    out = storage.absolute(out)  # Ray Tune runs trials in directories of their own
    sweep = plan.sweep
    with run.ray():
        trainable = sweep.trainable(out, run.progress, run.address)
        before = read_ledger(out)
        tuner, restored = _tuner(tune.with_resources(trainable, dict(cfg.resources)), cfg, out, run.progress)
        results = tuner.fit()  # does not raise on trial errors: they are in the rows
        ledger = read_ledger(out)
    rows = _rows(results, cfg, sweep, ledger)
    best = pick_best(rows, cfg)
    write_rows(rows, out, "results")
    test = _export(best, cfg, sweep, out) if best else None
    print(format_table(rows, cfg))  # the result itself: printed with --quiet too
    if best:
        print(f"best: trial {best['trial']} {cfg.metric} {best[f'best_{cfg.metric}']:.4f}"
              + (f"; test srcc {test['srcc']:.4f} plcc {test['plcc']:.4f} (n={test['n_test']})" if test else ""))
    done = finished_before(before, ledger)
    errored = sum(r["error"] is not None for r in rows)
    return Outcome(
        rows_in=cfg.planned_trials(), rows_out=len(rows) - errored, rows_written=len(rows) - len(done),
        rows_with_errors=errored, already_done=len(done), unit="trials",
        details={"kind": cfg.kind, "restored": restored, "finished_before": done, "metric": cfg.metric,
                 "mode": cfg.mode, "stopped_early": sum(r["stopped_early"] for r in rows), "errored": errored,
                 "best": best, "test": test, **sweep.details()},
    )


def run_tune(manifest: str | None, features: str | None, corpus: str | None, out: str, cfg: TuneConfig, *,
             progress: bool = True, address: str | None = None) -> StageSummary:
    """Run (or resume) the sweep ``cfg`` into ``out`` (:func:`uniqa.executor.execute` of this stage); see the
    module docstring for the layout."""
    from uniqa.executor import execute

    return execute("tune", [manifest, features, corpus], out, cfg, progress=progress, address=address)
