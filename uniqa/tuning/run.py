"""``run_tune``: a Ray Tune sweep defined as data (``tuning/<sweep>.yaml``, :class:`TuneConfig`) -> ``RUN/``.

This package holds all the Ray Tune code of uniqa (ARCHITECTURE: "Ray Tune only in tuning/ and its runner"); the
top-level ``tuning/`` folder holds only the sweep files (data) and ``tuning/run.py``, the ``ray job submit``
entry point that forwards to ``uniqa tune``.

adapter sweeps: manifest + cached features (``uniqa features``; computed into ``RUN/features`` when not given)
-> pre-flight (every check before any trial) -> one Tune trial per sampled config: the adapter recipe's pure
training loop (:func:`uniqa.adapters.training.train_head`) on the cached features of ``split``'s train side
minus a validation part carved from it (whole content groups), reporting validation SRCC every epoch to an
``ASHAScheduler`` -> the best finished trial (errored trials filtered out here: ``get_best_result`` may pick
one) is retrained in the driver (seeded: the same weights) and only it is scored on the test side.
pretrain sweeps (:mod:`uniqa.tuning.pretrain`): one trial per config, each fitting its own ``TorchTrainer``
(``run_pretrain`` into ``RUN/trials/<trial_id>``), reporting its final loss and, given a manifest, the zero-shot
SRCC of its checkpoint on the held-out test side of ``split``.

Layout of ``RUN`` (local or ``s3://``):
- ``RUN/<name>/``: Tune's experiment (rerunning the same command restores it with ``resume_errored=True``:
  trials its saved state holds as finished are not run again (the state is saved after every controller step,
  uploaded every 10 s to s3://: a trial that finished in the moment before a kill can run again); interrupted
  trials restart from epoch 1; errored ones are retried; ASHA's rungs are not restored, a resumed sweep's
  scheduler starts empty);
- ``RUN/_ledger/``: one empty file per trial start / completion / error (written by the driver): how many times
  each trial started, across reruns;
- ``RUN/results.{parquet,csv}``: one row per trial (config, best metric, epochs run, stopped early, seconds,
  error, starts), also printed;
- ``RUN/best.yaml``: the best trial's config; ``RUN/best/``: its adapter (``uniqa score --heads
  quality=RUN/best``); ``RUN/test.json``: the best trial's test-split numbers (adapter sweeps only).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass

import numpy as np

from uniqa import storage
from uniqa.errors import UniqaError
from uniqa.runtime import policy_threads
from uniqa.stage import StageSummary, Timer, config_fingerprint
from uniqa.tuning.config import TuneConfig

LEDGER = "_ledger"
TRIAL_ID = re.compile(r"([0-9a-f]{5}_(\d{5}))")


# ---------------------------------------------------------------- pre-flight (no Ray)


@dataclass
class AdapterData:
    """What every adapter trial gets (through the object store): cached training features, the validation
    features (test views of the val images) and the templates of each prompt set the space can choose."""

    train: np.ndarray  # [N, K, D] training views of every labelled image (positions index them)
    val: np.ndarray  # [n_val, T, D]
    val_mos: np.ndarray
    train_pos: np.ndarray  # clean train positions (split's train side minus val)
    train_mos: np.ndarray
    templates: dict
    defaults: dict  # epochs, batch_size, lr, weight_decay, prompt_set, train_views of the base
    head: str
    seed: int
    threads: int | None
    fail_trials: tuple[int, ...]
    fail_at_epoch: int


def adapt_config(cfg: TuneConfig):
    from uniqa.adapters.config import AdaptConfig
    from uniqa.config import from_dict

    base = {k: v for k, v in cfg.base.items()}
    for key in ("protocol", "splits", "runner", "mode"):
        base.pop(key, None)
    return from_dict(AdaptConfig, {**base, "protocol": "full", "splits": [cfg.split], "runner": "local"}, "base")


def trial_threads(cfg: TuneConfig, base) -> int:
    """torch threads under the thread policy: of an adapter trial (its reserved CPUs), of a pretrain trial's
    Train workers (theirs)."""
    if cfg.kind == "pretrain":
        return policy_threads(base.threads, cpus=base.cpus_per_worker)
    return policy_threads(base.threads, cpus=float(cfg.resources.get("cpu", 0)))


def prompt_set_name(value: str, head: str) -> str:
    return {"single": head, "ensemble": f"{head}-ensemble"}.get(value, value)


def preflight(manifest: str | None, features: str | None, corpus: str | None, cfg: TuneConfig):
    """Every check that touches storage or the model, before any trial: -> (adapter prepared, AdaptConfig) or
    the pretrain base config."""
    if cfg.kind == "pretrain":
        from uniqa.tuning.pretrain import preflight as pretrain_sweep_preflight

        return None, pretrain_sweep_preflight(manifest, corpus, cfg)
    if not manifest:
        raise UniqaError("an adapter sweep needs --manifest (or `manifest:` in the sweep file)")
    from uniqa.adapters.prompts import get_prompt_set
    from uniqa.adapters.run import preflight as adapt_preflight

    acfg = adapt_config(cfg)
    for name in ("epochs", "batch_size", "hidden", "train_views"):
        for value in cfg.values(name):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UniqaError(f"search_space.{name}: {value!r} is not a positive integer")
    for value in cfg.values("prompt_set"):
        get_prompt_set(prompt_set_name(str(value), acfg.head))
    views = max(cfg.values("train_views") or [acfg.views])
    if cfg.search_space.get("train_views") is not None and not cfg.values("train_views"):
        raise UniqaError("search_space.train_views must be a value, choice or grid (the cache's K must be known)")
    acfg = _replace(acfg, train_views=views)
    prep = adapt_preflight(manifest, features, acfg)
    if prep.train_views < views:
        raise UniqaError(f"features {features} hold {prep.train_views} training views; the search space asks for "
                         f"train_views up to {views}")
    return prep, acfg


def _replace(cfg, **changes):
    from dataclasses import replace

    return replace(cfg, **changes)


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


# ---------------------------------------------------------------- trials (run in Tune's trial actors)


def trial_number(trial_id: str) -> int:
    return int(trial_id.rsplit("_", 1)[1])


def adapter_recipe(config: dict, data: AdapterData):
    """(Recipe, prompt set, K) of one trial: the sampled values over the base's."""
    from uniqa.adapters.training import Recipe

    d = {**data.defaults, **config}
    recipe = Recipe(epochs=int(d["epochs"]), batch_size=int(d["batch_size"]), lr=float(d["lr"]),
                    weight_decay=float(d["weight_decay"]), hidden=d.get("hidden"))
    return recipe, prompt_set_name(str(d["prompt_set"]), data.head), int(d["train_views"])


def train_adapter(config: dict, data: AdapterData, evals: dict, on_epoch):
    """The adapter recipe on cached features for one config (the same call in a trial and for the export)."""
    from uniqa.adapters.training import cached_source, train_head
    from uniqa.runtime import torch_threads

    recipe, prompt_set, k = adapter_recipe(config, data)
    source = cached_source(np.ascontiguousarray(data.train[:, :k]))
    with torch_threads(data.threads):
        return train_head(data.templates[prompt_set], source, data.train_pos, data.train_mos, evals, "val", recipe,
                          data.seed, on_epoch)


def adapter_trial(config: dict, data: AdapterData) -> None:
    """A Tune function trainable: train, report the validation metrics after every epoch (ASHA may stop it)."""
    import torch
    from ray import tune

    number = trial_number(tune.get_context().get_trial_id())

    def on_epoch(row: dict) -> None:
        if number in data.fail_trials and row["epoch"] >= data.fail_at_epoch:
            raise RuntimeError(f"injected failure (fail_trials) in trial {number} at epoch {row['epoch']}")
        tune.report({"epoch": row["epoch"], "loss": row["loss"],
                     **{k: row[k] for k in ("val_srcc", "val_plcc", "val_krcc")}})

    val = {"val": (torch.from_numpy(data.val), data.val_mos)}
    train_adapter(config, data, val, on_epoch)


# ---------------------------------------------------------------- the sweep (driver)


def _ledger_callback(out: str):
    from ray import tune

    class Ledger(tune.Callback):
        """One empty file per trial event under RUN/_ledger (survives a killed driver; counts starts)."""

        def __init__(self, uri: str):
            self.uri = uri

        def _mark(self, trial, event: str) -> None:
            storage.write_bytes(storage.join(self.uri, f"{trial.trial_id}.{event}.{time.time_ns()}"), b"")

        def on_trial_start(self, iteration, trials, trial, **info):
            self._mark(trial, "start")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._mark(trial, "complete")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._mark(trial, "error")

    return Ledger(storage.join(out, LEDGER))


def read_ledger(out: str) -> dict[str, dict[str, int]]:
    """trial_id -> {event: count} from RUN/_ledger."""
    uri = storage.join(out, LEDGER)
    counts: dict[str, dict[str, int]] = {}
    if not storage.exists(uri) and not storage.is_dir(uri):
        return counts
    for path in storage.list_files(uri):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        parts = name.split(".")
        if len(parts) == 3:
            counts.setdefault(parts[0], {}).setdefault(parts[1], 0)
            counts[parts[0]][parts[1]] += 1
    return counts


def finished_trials(out: str, cfg: TuneConfig) -> list[str]:
    """The trials Tune's saved experiment state holds as finished (TERMINATED or ERROR): a rerun does not run the
    terminated ones again (``resume_errored=True`` retries the errored)."""
    import pyarrow.fs as pafs

    fs, path = storage.resolve(storage.join(out, cfg.name))
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False, allow_not_found=True))
    states = sorted(i.path for i in infos if i.base_name.startswith("experiment_state-") and i.path.endswith(".json"))
    if not states:
        return []
    with fs.open_input_stream(states[-1]) as f:
        trials = [json.loads(t[0]) for t in json.loads(f.read())["trial_data"]]
    return sorted(t["trial_id"] for t in trials if t.get("status") in ("TERMINATED", "ERROR"))


def _storage(out: str):
    if storage.is_s3(out):
        fs, path = storage.resolve(out)
        return fs, path
    return None, os.path.abspath(out)


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
    fs, path = _storage(out)
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
                                callbacks=[_ledger_callback(out)], verbose=1 if progress else 0,
                                sync_config=tune.SyncConfig(sync_period=10),
                                failure_config=tune.FailureConfig(max_failures=0))
    return tune.Tuner(trainable, param_space=param_space(cfg), tune_config=tune_config, run_config=run_config), False


def _rows(results, cfg: TuneConfig, defaults: dict, ledger: dict) -> list[dict]:
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
        planned = int(result.config.get("epochs", defaults.get("epochs", 0)))
        error = None if result.error is None else f"{type(result.error).__name__}: {_message(result.error)}"
        rows.append({"trial_id": trial_id, "trial": trial_number(trial_id) if found or "_" in trial_id else -1,
                     **{f"config_{k}": result.config.get(k) for k in cfg.search_space},
                     f"best_{cfg.metric}": best, "epochs_run": epochs,
                     "stopped_early": error is None and cfg.kind == "adapter" and epochs < planned,
                     "seconds": float(metrics.get("time_total_s", float("nan"))), "error": error,
                     "starts": ledger.get(trial_id, {}).get("start", 0)})
    return sorted(rows, key=lambda r: r["trial"])


def _message(error: BaseException) -> str:
    """The user's exception message out of Tune's wrapper (its last non-empty line)."""
    text = str(error).strip()
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    for line in reversed(lines):
        if "injected failure" in line or "Error:" in line:
            return line.split("Error: ", 1)[-1] if "Error: " in line else line
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


def run_tune(manifest: str | None, features: str | None, corpus: str | None, out: str, cfg: TuneConfig, *,
             progress: bool = True, address: str | None = None) -> StageSummary:
    """Run (or resume) the sweep ``cfg`` into ``out``; see the module docstring for the layout."""
    # Ray Tune runs trials in directories of their own: every local path a trial sees must be absolute
    manifest, features, corpus, out = (None if uri is None else storage.absolute(uri)
                                       for uri in (manifest, features, corpus, out))
    prep, base = preflight(manifest, features, corpus, cfg)  # nothing below runs on bad input
    from ray import tune

    from uniqa.runtime import init_ray, quiet_ray_data

    with Timer() as timer:
        if cfg.kind == "adapter":
            data, defaults, test_set = _adapter_data(manifest, features, out, cfg, prep, base, progress, address)
            trainable = tune.with_parameters(adapter_trial, data=data)
        else:
            init_ray(address)
            defaults = {"epochs": base.epochs}
            from uniqa.tuning.pretrain import pretrain_trial, trial_data

            trainable = tune.with_parameters(pretrain_trial, data=trial_data(cfg, out, corpus, manifest))
        quiet_ray_data(quiet=not progress)
        before = finished_trials(out, cfg)
        tuner, restored = _tuner(tune.with_resources(trainable, dict(cfg.resources)), cfg, out, progress)
        results = tuner.fit()  # does not raise on trial errors: they are in the rows
        ledger = read_ledger(out)
    rows = _rows(results, cfg, defaults, ledger)
    best = pick_best(rows, cfg)
    from uniqa.adapters.results import write_rows

    write_rows(rows, out, "results")
    test = _export(best, cfg, out, data, test_set) if best and cfg.kind == "adapter" else None
    if best and cfg.kind == "pretrain":
        _export(best, cfg, out, None, None)
    print(format_table(rows, cfg))  # the result itself: printed with --quiet too
    if best:
        print(f"best: trial {best['trial']} {cfg.metric} {best[f'best_{cfg.metric}']:.4f}"
              + (f"; test srcc {test['srcc']:.4f} plcc {test['plcc']:.4f} (n={test['n_test']})" if test else ""))
    done_before = len(before)
    errored = sum(r["error"] is not None for r in rows)
    return StageSummary(
        stage="tune", inputs={"manifest": manifest, "features": features, "corpus": corpus}, output=out,
        rows_in=len(rows), rows_out=len(rows), rows_written=len(rows) - done_before, rows_with_errors=errored,
        already_done=done_before, seconds=timer.seconds, unit="trials", config_fingerprint=config_fingerprint(cfg),
        details={"kind": cfg.kind, "restored": restored, "finished_before": before, "metric": cfg.metric,
                 "mode": cfg.mode, "threads": trial_threads(cfg, base),
                 "stopped_early": sum(r["stopped_early"] for r in rows), "errored": errored,
                 "best": best, "test": test, "leak": None if prep is None else prep.leak},
    ).write()


def _adapter_data(manifest, features, out, cfg, prep, acfg, progress, address):
    from uniqa.adapters.run import features_config
    from uniqa.adapters.training import HeadTemplate
    from uniqa.data.views import VIEW_COUNTS
    from uniqa.features.read import load_features
    from uniqa.runtime import init_ray

    init_ray(address)
    if features is None:
        from uniqa.features.run import run_features

        features = storage.join(out, "features")
        done = run_features(manifest, features, features_config(acfg), progress=progress, address=address)
        if not done.complete:
            raise UniqaError(f"features {features} are incomplete ({done.rows_missing} images missing); rerun")
        prep.train_views = acfg.views
    cached = load_features(features, prep.ids, prep.train_views, VIEW_COUNTS["crops10"])
    failed = np.array(sorted(i for i, image_id in enumerate(prep.ids) if image_id in cached.failed), np.int64)
    plan = prep.plans[0]
    train_pos, val_pos, test_pos = (np.setdiff1d(p, failed) for p in (plan.clean_train, plan.val, plan.test))
    model, tokenizer = prep.frozen.load()
    names = {prompt_set_name(str(v), acfg.head) for v in cfg.values("prompt_set")} or {acfg.trained_prompt_set}
    templates = {name: HeadTemplate.from_model(model, tokenizer, name) for name in names}
    defaults = {"epochs": acfg.epochs, "batch_size": acfg.batch_size, "lr": acfg.lr,
                "weight_decay": acfg.weight_decay, "prompt_set": acfg.trained_prompt_set,
                "train_views": acfg.views, "hidden": None}
    threads = acfg.threads  # None: the policy, the trial's reserved CPUs (the export in the driver: 1)
    data = AdapterData(cached.train, cached.test[val_pos], prep.mos[val_pos], train_pos, prep.mos[train_pos],
                       templates, defaults, acfg.head, plan.seed, threads, cfg.fail_trials, cfg.fail_at_epoch)
    return data, defaults, (cached.test[test_pos], prep.mos[test_pos])  # the test side stays in the driver


def _export(best: dict, cfg: TuneConfig, out: str, data: AdapterData | None, test_set) -> dict | None:
    """RUN/best.yaml; adapter sweeps: RUN/best/ (the head, retrained from the same seed for the epochs the trial
    ran) and RUN/test.json (its test-side numbers: the only time the sweep touches the test split)."""
    import yaml

    config = {k.removeprefix("config_"): v for k, v in best.items() if k.startswith("config_")}
    record = {"trial": best["trial"], "trial_id": best["trial_id"], "metric": cfg.metric,
              "value": best[f"best_{cfg.metric}"], "epochs_run": best["epochs_run"], "kind": cfg.kind,
              "base": dict(cfg.base), "config": config}
    if cfg.kind == "pretrain":
        record["checkpoint"] = storage.join(out, "trials", best["trial_id"], "final")
    storage.write_bytes(storage.join(out, "best.yaml"), yaml.safe_dump(_plain(record), sort_keys=False).encode())
    if data is None:
        return None
    import torch

    from uniqa.adapters.head import save_head

    test_features, test_mos = test_set
    evals = {"val": (torch.from_numpy(data.val), data.val_mos), "test": (torch.from_numpy(test_features), test_mos)}
    stop = best["epochs_run"]
    result = train_adapter(config, data, evals, lambda row: row["epoch"] >= stop)
    recipe, prompt_set, _ = adapter_recipe(config, data)
    head = data.templates[prompt_set].head(adapter=True, hidden=recipe.hidden)
    head.load_state_dict(result.state)
    save_head(head, storage.join(out, "best"))
    test = {"trial": best["trial"], "epoch": result.epoch, "val_srcc": result.metrics["val"]["srcc"],
            **result.metrics["test"], "n_test": len(test_mos), "split": cfg.split, "prompt_set": prompt_set}
    storage.write_bytes(storage.join(out, "test.json"), json.dumps(_plain(test), indent=2).encode())
    return test


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
