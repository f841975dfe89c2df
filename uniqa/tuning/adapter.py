"""Adapter sweeps (``kind: adapter``): manifest + cached features (``uniqa features``; computed into
``RUN/features`` when not given) -> pre-flight (every check before any trial) -> one Tune trial per sampled config:
the adapter recipe's pure training loop (:func:`uniqa.adapters.training.train_head`) on the cached features of
``split``'s train side minus a validation part carved from it (whole content groups), reporting validation SRCC
every epoch (a scheduler such as ASHA may stop it) -> the best finished trial is retrained in the driver (seeded:
the same weights) and only it is scored on the test side: ``RUN/best/`` (its adapter) and ``RUN/test.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from uniqa import storage
from uniqa.adapters.config import EXECUTION
from uniqa.errors import UniqaError
from uniqa.runtime import policy_threads
from uniqa.stage import json_value
from uniqa.tuning.config import TuneConfig


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
    defaults: dict  # epochs, batch_size, lr, weight_decay, prompt_set, train_views, hidden of the base
    head: str
    seed: int
    threads: int | None  # torch threads of a trial (None: the thread policy's, its reserved CPUs)


def adapt_config(cfg: TuneConfig):
    """The sweep's base as an AdaptConfig: the full protocol on ``split``, run in this process."""
    from uniqa.adapters.config import AdaptConfig
    from uniqa.config import from_dict

    base = {k: v for k, v in cfg.base.items() if k not in ("protocol", "splits", "runner", "mode")}
    return from_dict(AdaptConfig, {**base, "protocol": "full", "splits": [cfg.split], "runner": "local"}, "base")


def prompt_set_name(value: str, head: str) -> str:
    return {"single": head, "ensemble": f"{head}-ensemble"}.get(value, value)


@dataclass
class AdapterSweep:
    """The adapter kind of :class:`uniqa.tuning.sweep.SweepKind`; made by :meth:`preflight`."""

    execution: ClassVar[tuple[str, ...]] = EXECUTION  # of the base config: not in the sweep's identity
    cfg: TuneConfig
    acfg: object  # the base AdaptConfig (train_views: the most the space asks for)
    prep: object  # uniqa.adapters.run.AdaptPlan
    manifest: str
    features: str | None
    data: AdapterData | None = None  # set by trainable()
    test_set: tuple[np.ndarray, np.ndarray] | None = None  # the test side's features and MOS: the driver's only

    @classmethod
    def preflight(cls, manifest: str | None, features: str | None, corpus: str | None, cfg: TuneConfig):
        """Every check that touches storage or the model, before any trial: the search space's values, the
        manifest, the features (their model key, views and coverage)."""
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
        if cfg.search_space.get("train_views") is not None and not cfg.values("train_views"):
            raise UniqaError("search_space.train_views must be a value, choice or grid (the cache's K must be known)")
        views = max(cfg.values("train_views") or [acfg.views])
        acfg = replace(acfg, train_views=views)
        prep = adapt_preflight(manifest, features, "", acfg)  # no output of its own (out is not read)
        if prep.train_views < views:
            raise UniqaError(f"features {features} hold {prep.train_views} training views; the search space asks "
                             f"for train_views up to {views}")
        return cls(cfg, acfg, prep, manifest, features)

    def load(self, out: str | None, progress: bool = False, address: str | None = None) -> AdapterData:
        """The trials' data (features computed into OUT/features first when none were given); keeps the test
        side in this object for :meth:`export`."""
        from uniqa.adapters.run import cached_features
        from uniqa.adapters.training import HeadTemplate

        acfg, prep = self.acfg, self.prep
        train, test, failed = cached_features(self.manifest, self.features, out, acfg, prep, progress, address)
        plan = prep.plans[0]
        train_pos, val_pos, test_pos = (np.setdiff1d(p, failed) for p in (plan.clean_train, plan.val, plan.test))
        model, tokenizer = prep.frozen.load()
        names = {prompt_set_name(str(v), acfg.head) for v in self.cfg.values("prompt_set")} or {
            acfg.trained_prompt_set}
        templates = {name: HeadTemplate.from_model(model, tokenizer, name) for name in names}
        defaults = {"epochs": acfg.epochs, "batch_size": acfg.batch_size, "lr": acfg.lr,
                    "weight_decay": acfg.weight_decay, "prompt_set": acfg.trained_prompt_set,
                    "train_views": acfg.views, "hidden": None}
        self.data = AdapterData(train, test[val_pos], prep.mos[val_pos], train_pos, prep.mos[train_pos], templates,
                                defaults, acfg.head, plan.seed, acfg.threads)
        self.test_set = test[test_pos], prep.mos[test_pos]
        return self.data

    def trainable(self, out: str, progress: bool, address: str | None):
        from ray import tune

        return tune.with_parameters(adapter_trial, data=self.load(out, progress, address))

    def stopped_early(self, config: dict, epochs_run: int) -> bool:
        return epochs_run < int(config.get("epochs", self.acfg.epochs))

    def export(self, best: dict, config: dict, out: str) -> tuple[dict, dict]:
        """RUN/best/ (the best trial's head, retrained from the same seed for the epochs the trial ran) and
        RUN/test.json (its test-side numbers: the only time the sweep touches the test split)."""
        import torch

        from uniqa.adapters.head import save_head

        data, (test_features, test_mos) = self.data, self.test_set
        evals = {"val": (torch.from_numpy(data.val), data.val_mos),
                 "test": (torch.from_numpy(test_features), test_mos)}
        stop = best["epochs_run"]
        result = train_adapter(config, data, evals, lambda row: row["epoch"] >= stop)
        recipe, prompt_set, _ = adapter_recipe(config, data)
        head = data.templates[prompt_set].head(adapter=True, hidden=recipe.hidden)
        head.load_state_dict(result.state)
        save_head(head, storage.join(out, "best"))
        test = {"trial": best["trial"], "epoch": result.epoch, "val_srcc": result.metrics["val"]["srcc"],
                **result.metrics["test"], "n_test": len(test_mos), "split": self.cfg.split, "prompt_set": prompt_set}
        storage.write_bytes(storage.join(out, "test.json"), json.dumps(test, indent=2, default=json_value).encode())
        return {}, json.loads(json.dumps(test, default=json_value))

    def details(self) -> dict:
        """torch threads of a trial (the thread policy: its reserved CPUs) and the leak check's record."""
        return {"threads": policy_threads(self.acfg.threads, cpus=float(self.cfg.resources.get("cpu", 0))),
                "leak": self.prep.leak}


# ---------------------------------------------------------------- trials (run in Tune's trial actors)


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

    def on_epoch(row: dict) -> None:
        tune.report({"epoch": row["epoch"], "loss": row["loss"],
                     **{k: row[k] for k in ("val_srcc", "val_plcc", "val_krcc")}})

    train_adapter(config, data, {"val": (torch.from_numpy(data.val), data.val_mos)}, on_epoch)
