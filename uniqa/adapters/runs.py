"""The runs of a protocol: one run (pure torch: zero-shot heads, or a reference-style and a clean training on
cached features), and all of them, in this process or as Ray tasks (in the stage's Ray session)."""

from __future__ import annotations

import numpy as np

from uniqa.adapters.config import AdaptConfig
from uniqa.adapters.protocols import RunPlan
from uniqa.adapters.training import Recipe, TrainFeatures, cached_source, correlations, predict
from uniqa.runtime import policy_threads


def run_one(plan: RunPlan, train: TrainFeatures | np.ndarray, test, mos: np.ndarray, templates: dict,
            recipe: Recipe, trained_set: str, threads: int | None = None) -> tuple[list[dict], list[dict], dict]:
    """One run (pure torch): zero-shot heads, or a reference-style and a clean training. ``test``: test-view
    features [N, T, D] of every labelled image. Returns (result rows, history rows, clean head state)."""
    from uniqa.runtime import torch_threads

    with torch_threads(threads):
        return _run_one(plan, train, test, mos, templates, recipe, trained_set)


def _run_one(plan: RunPlan, train, test, mos: np.ndarray, templates: dict, recipe: Recipe,
             trained_set: str) -> tuple[list[dict], list[dict], dict]:
    import torch

    from uniqa.adapters.training import train_head

    test = torch.as_tensor(test)
    source = cached_source(train) if isinstance(train, np.ndarray) else train
    sets = {name: (test[torch.from_numpy(pos)], mos[pos]) for name, pos in (("test", plan.test), ("val", plan.val))}
    base = {"protocol": plan.protocol, "run": plan.name, "split": plan.split, "labels": plan.labels,
            "few_seed": plan.few_seed, "n_test": len(plan.test)}
    if plan.protocol == "zero-shot":
        rows = []
        for name, template in templates.items():
            metrics = correlations(predict(template.head(adapter=False), sets["test"][0]), sets["test"][1])
            rows.append({**base, "prompt_set": name, "selection": "zero-shot", "epoch": 0, "step": 0, "n_train": 0,
                         "n_val": 0, **metrics})
        return rows, [], {}
    template = templates[trained_set]
    ref = train_head(template, source, plan.train, mos[plan.train], {"test": sets["test"]}, "test", recipe, plan.seed)
    clean = train_head(template, source, plan.clean_train, mos[plan.clean_train], sets, "val", recipe, plan.seed)
    rows = [{**base, "prompt_set": trained_set, "selection": "reference", "epoch": ref.epoch, "step": ref.step,
             "n_train": len(plan.train), "n_val": 0, **ref.metrics["test"]},
            {**base, "prompt_set": trained_set, "selection": "clean", "epoch": clean.epoch, "step": clean.step,
             "n_train": len(plan.clean_train), "n_val": len(plan.val), **clean.metrics["test"]}]
    history = [{"run": plan.name, "selection": sel, **h} for sel, r in (("reference", ref), ("clean", clean))
               for h in r.history]
    return rows, history, clean.state


def in_process(cfg: AdaptConfig) -> bool:
    """Whether the runs run in this process (the local runner, and exact mode: it holds a model and reads images),
    not as Ray tasks."""
    return cfg.runner == "local" or cfg.mode == "exact"


def run_threads(cfg: AdaptConfig) -> int:
    """torch threads of each run under the thread policy: a Ray task's reserved CPUs; in this process, 1."""
    return policy_threads(cfg.threads, cpus=None if in_process(cfg) else cfg.cpus_per_run)


def run_all(plans, train, test, mos, templates, recipe, cfg):
    """Yield (plan, (rows, history, state)) as each run finishes: in this process (:func:`in_process`), or as Ray
    tasks (in the work's Ray session: a worker's bad-input error comes out as one line)."""
    trained_set = cfg.trained_prompt_set
    if in_process(cfg):
        for p in plans:
            yield p, run_one(p, train, test, mos, templates, recipe, trained_set, cfg.threads)
        return
    import ray

    task = ray.remote(run_one).options(num_cpus=cfg.cpus_per_run)
    train_ref, test_ref = ray.put(train), ray.put(test)
    pending = {task.remote(p, train_ref, test_ref, mos, templates, recipe, trained_set, cfg.threads): p
               for p in plans}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        yield pending.pop(ready[0]), ray.get(ready[0])
