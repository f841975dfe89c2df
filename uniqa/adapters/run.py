"""``uniqa adapt``: train and evaluate UniQA adapters under the paper's protocols (METHOD §3-§4).

manifest (+ features) -> pre-flight (every check before any work) -> features (cached: read, or computed with
``uniqa features`` into OUT/features; exact: re-encoded every epoch) -> runs (Ray tasks, pure torch on features)
-> OUT/results.{parquet,csv} (a row per run and selection), OUT/summary.{parquet,csv} (median, mean +- std),
OUT/history.parquet (per evaluation: every epoch, or every ``val_every`` steps), OUT/adapters/<run>/ (the clean
evaluation's head: ``uniqa score --heads quality=OUT/adapters/split_0``), and the printed table.

Resumable: each finished run leaves its adapter and then ``OUT/runs/<run>.json`` (its result and history rows), so
a rerun of the same command skips those runs (``already_done``) and ends with the same tables as one uninterrupted
run. ``OUT/_run.json`` holds what the results depend on (model, recipe, protocol, seeds: not the execution knobs);
a rerun with other values is refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import numpy as np
import pyarrow.compute as pc

from uniqa import sink, storage
from uniqa.adapters.config import AdaptConfig
from uniqa.adapters.protocols import RunPlan, plan_runs
from uniqa.adapters.results import finished_runs, record_run, write_results
from uniqa.adapters.training import HeadTemplate, Recipe, TrainFeatures, cached_source, correlations, predict
from uniqa.data.images import decode_key, manifest_decode_sizes
from uniqa.errors import UniqaError
from uniqa.models.encoder import FrozenModel, frozen_model
from uniqa.provenance import check_leak, corpus_mask
from uniqa.runtime import policy_threads
from uniqa.schema import SPLIT_COLUMNS, check_unique
from uniqa.stage import StageSummary, Timer, config_fingerprint
from uniqa.tables import dataset_schema, parquet_files, read_columns

EXECUTION = ("runner", "cpus_per_run", "threads", "device", "save_adapters", "allow_leak")  # leave results unchanged


@dataclass
class Prepared:
    """What the pre-flight found: the labelled rows (in this order, ``positions`` index them) and the runs."""

    ids: list[str]
    uris: list[str]
    mos: np.ndarray
    plans: list[RunPlan]
    frozen: FrozenModel
    train_views: int  # K of the features used
    rows_in_manifest: int
    leak: dict  # the runs' test images against the model's pre-training corpus (uniqa.provenance.check_leak)
    in_corpus: np.ndarray | None  # per labelled row: in that corpus (None: provenance unknown)
    decode: str | None = None  # the decode sizes of the images (uniqa.data.images.decode_key; None: as stored)


def needed_splits(cfg: AdaptConfig) -> list[int]:
    if cfg.protocol == "zero-shot" and cfg.zero_shot_images == "all":
        return []
    if cfg.protocol == "few-label":
        return sorted({j % 10 for j in cfg.few_label_seeds})
    return list(cfg.splits)


def preflight(manifest: str, features: str | None, cfg: AdaptConfig) -> Prepared:
    """Every check that reads storage, before any work: the model, the manifest's columns and labels, the runs'
    sizes, and (given ``features``) the cache's model key and its coverage of the labelled images."""
    frozen = frozen_model(cfg.model, cfg.pretrained, cfg.seed, cfg.pos_embedding)
    files = parquet_files(manifest)
    names = dataset_schema(files).names
    splits = [SPLIT_COLUMNS[i] for i in needed_splits(cfg)]
    for column in ("image_id", "image_uri", "mos_norm", *splits):
        if column not in names:
            why = " (adapters train on MOS normalised to [0, 1]: prepare the manifest with `uniqa data prepare`)"
            raise UniqaError(f"manifest {manifest} has no column {column!r}{why if column == 'mos_norm' else ''}; "
                             f"found {names}")
    columns = ["image_id", "image_uri", "mos_norm", *splits, *(["group"] if "group" in names else [])]
    table = read_columns(files, columns)
    check_unique(table["image_id"], f"manifest {manifest}")
    labelled = table.filter(pc.is_valid(table["mos_norm"]))
    if not len(labelled):
        raise UniqaError(f"manifest {manifest} has no labelled images (mos_norm is null in all {len(table)} rows)")
    ids = labelled["image_id"].to_pylist()
    groups = labelled["group"].to_pylist() if "group" in columns else [None] * len(ids)
    groups = np.array([g if g is not None else f"image:{i}" for g, i in zip(groups, ids)], dtype=object)
    split_values = {c: np.array(labelled[c].to_pylist(), dtype=object) for c in splits}
    plans = plan_runs(cfg.protocol, split_values, groups, seed=cfg.seed, split_ids=cfg.splits,
                      sizes=cfg.few_label_sizes, few_seeds=cfg.few_label_seeds, val_fraction=cfg.val_fraction,
                      val_min_images=cfg.val_min_images, zero_shot_images=cfg.zero_shot_images)
    tested = {ids[i] for plan in plans for i in plan.test}
    leak = check_leak(cfg.model, cfg.pretrained, tested, allow_leak=cfg.allow_leak, where=f"manifest {manifest}")
    in_corpus = corpus_mask(cfg.model, cfg.pretrained, ids)
    decode = decode_key(cfg.decode_size, manifest_decode_sizes(files))
    k = cfg.views
    if features is not None and cfg.mode == "cached":
        k = _check_features(features, frozen, cfg, ids, plans, decode)
    return Prepared(ids, labelled["image_uri"].to_pylist(), labelled["mos_norm"].to_numpy(), plans, frozen, k,
                    len(table), leak, in_corpus, decode)


def _check_features(features: str, frozen: FrozenModel, cfg: AdaptConfig, ids: list[str], plans,
                    decode: str | None) -> int:
    from uniqa.features.read import check_identity, missing_ids

    identity = check_identity(features, {"model_checksum": frozen.key, "seed": cfg.seed, "decode": decode})
    if identity.get("test_views") != "crops10":
        raise UniqaError(f"features {features} hold {identity.get('test_views')!r} test views; the protocol tests "
                         "on crops10")
    used = sorted({int(p) for plan in plans for part in (plan.train, plan.test) for p in part})
    missing = missing_ids(features, [ids[p] for p in used])
    if missing:
        raise UniqaError(f"features {features} lack {len(missing)} labelled images of the manifest (e.g. "
                         f"{missing[0]!r}): run `uniqa features` on this manifest into it (it resumes)")
    return int(identity["train_views"])


def features_config(cfg: AdaptConfig):
    from uniqa.features.config import FeaturesConfig

    return FeaturesConfig(model=cfg.model, pretrained=cfg.pretrained, train_views=cfg.views, test_views="crops10",
                          seed=cfg.seed, views_per_pass=cfg.views_per_pass, decode_size=cfg.decode_size,
                          pos_embedding=cfg.pos_embedding, allow_leak=cfg.allow_leak,
                          leak_splits=tuple(SPLIT_COLUMNS[i] for i in needed_splits(cfg)))


def execute(plan: RunPlan, train: TrainFeatures | np.ndarray, test, mos: np.ndarray, templates: dict,
            recipe: Recipe, trained_set: str, threads: int | None = None) -> tuple[list[dict], list[dict], dict]:
    """One run (pure torch): zero-shot heads, or a reference-style and a clean training. ``test``: test-view
    features [N, T, D] of every labelled image. Returns (result rows, history rows, clean head state)."""
    from uniqa.runtime import torch_threads

    with torch_threads(threads):
        return _execute(plan, train, test, mos, templates, recipe, trained_set)


def _execute(plan: RunPlan, train, test, mos: np.ndarray, templates: dict, recipe: Recipe,
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


def run_adapt(manifest: str, features: str | None, out: str, cfg: AdaptConfig, *, progress: bool = True,
              address: str | None = None) -> StageSummary:
    """Run every run of ``cfg.protocol`` on ``manifest`` not already finished in ``out``; see the module docstring
    for what lands there."""
    prep = preflight(manifest, features, cfg)
    sink.check_run_identity(out, identity(cfg, prep))
    with Timer() as timer:
        done = finished_runs(out, prep.plans)
        todo = [plan for plan in prep.plans if plan.name not in done]
        failed = None  # images whose features failed (only known when features were read)
        if todo:
            train, test, failed = _features(manifest, features, out, cfg, prep, progress, address)
            templates = _templates(prep.frozen, cfg)
            recipe = Recipe(cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay, val_every=cfg.val_every)
            plans = [_without(plan, failed) for plan in todo]
            for plan, output in _execute_all(plans, train, test, prep.mos, templates, recipe, cfg, address):
                done[plan.name] = record_run(out, plan, output, templates, cfg)
    rows = [{**r, "leaked": leaked(prep, plan)} for plan in prep.plans for r in done[plan.name][0]]
    history = [h for plan in prep.plans for h in done[plan.name][1]]
    summary = write_results(out, rows, history)
    from uniqa.adapters.results import format_table

    print(format_table(summary))  # the result itself (not progress): printed with --quiet too
    return StageSummary(
        stage="adapt", inputs={"manifest": manifest, "features": features}, output=out, rows_in=len(prep.plans),
        rows_out=len(prep.plans), rows_written=len(todo), already_done=len(prep.plans) - len(todo),
        seconds=timer.seconds, unit="runs", config_fingerprint=config_fingerprint(cfg),
        details={"model_checksum": prep.frozen.key, "protocol": cfg.protocol, "mode": cfg.mode,
                 "labelled_images": len(prep.ids), "images_without_features": None if failed is None else len(failed),
                 "threads": run_threads(cfg), "leak": prep.leak, "decode": prep.decode,
                 "pos_embedding": cfg.pos_embedding, "summary": summary},
    ).write()


def leaked(prep: Prepared, plan: RunPlan) -> int | None:
    """The run's test images in the model's pre-training corpus (the results' ``leaked`` column); None: unknown."""
    return None if prep.in_corpus is None else int(prep.in_corpus[plan.test].sum())


def identity(cfg: AdaptConfig, prep: Prepared) -> dict:
    """What an output folder's results depend on (``OUT/_run.json``), as JSON values."""
    values = {k: v for k, v in asdict(cfg).items() if k not in EXECUTION}
    return json.loads(json.dumps({**values, "model_checksum": prep.frozen.key, "train_views": prep.train_views,
                                  "decode": prep.decode}))


def _features(manifest, features, out, cfg, prep, progress, address):
    """(training features: cached array [N, K, D] or the exact source, test features [N, T, D], failed positions)."""
    if cfg.mode == "exact":
        from uniqa.adapters.exact import ExactSource, manifest_row_sizes
        from uniqa.data.images import DecodeConfig
        from uniqa.models.encoder import ImageEncoder

        model, _ = prep.frozen.load(cfg.device)
        source = ExactSource(prep.uris, prep.ids, ImageEncoder(model, cfg.views_per_pass), cfg.seed, cfg.views,
                             decode=DecodeConfig(size=cfg.decode_size),
                             row_sizes=manifest_row_sizes(manifest, prep.ids))
        return source, _exact_test(source, prep), np.array([], np.int64)
    return cached_features(manifest, features, out, cfg, prep, progress, address)


def cached_features(manifest: str, features: str | None, out: str, cfg: AdaptConfig, prep: Prepared,
                    progress: bool = True, address: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training data of cached-mode adapters (and of adapter sweeps): the labelled images' (training views
    [N, K, D], test views [N, T, D], positions whose features failed), in ``prep``'s order. Read from
    ``features``; when it is None, computed first with ``uniqa features`` into OUT/features (which resumes)."""
    from uniqa.data.views import VIEW_COUNTS
    from uniqa.features.read import load_features

    if features is None:
        from uniqa.features.run import run_features

        features = storage.join(out, "features")
        done = run_features(manifest, features, features_config(cfg), progress=progress, address=address)
        if not done.complete:
            raise UniqaError(f"features {features} are incomplete ({done.rows_missing} images missing); rerun")
    cached = load_features(features, prep.ids, prep.train_views, VIEW_COUNTS["crops10"])
    failed = np.array([i for i, image_id in enumerate(prep.ids) if image_id in cached.failed], np.int64)
    return cached.train, cached.test, failed


def _exact_test(source, prep: Prepared) -> np.ndarray:
    """Test-view features [N, T, D] of the images a run tests or validates on (zeros elsewhere: never read)."""
    needed = np.unique(np.concatenate([part for plan in prep.plans for part in (plan.test, plan.val)]))
    views = source.test(needed).numpy()
    test = np.zeros((len(prep.ids), *views.shape[1:]), views.dtype)
    test[needed] = views
    return test


def _without(plan: RunPlan, failed: np.ndarray) -> RunPlan:
    if not len(failed):
        return plan
    return replace(plan, train=np.setdiff1d(plan.train, failed), val=np.setdiff1d(plan.val, failed),
                   test=np.setdiff1d(plan.test, failed))


def run_threads(cfg: AdaptConfig) -> int:
    """torch threads of each run under the thread policy: a Ray task's reserved CPUs; in this process, 1."""
    local = cfg.runner == "local" or cfg.mode == "exact"
    return policy_threads(cfg.threads, cpus=None if local else cfg.cpus_per_run)


def _templates(frozen: FrozenModel, cfg: AdaptConfig) -> dict[str, HeadTemplate]:
    model, tokenizer = frozen.load()
    names = cfg.zero_shot_prompt_sets if cfg.protocol == "zero-shot" else (cfg.trained_prompt_set,)
    return {name: HeadTemplate.from_model(model, tokenizer, name) for name in names}


def _execute_all(plans, train, test, mos, templates, recipe, cfg, address):
    """Yield (plan, (rows, history, state)) as each run finishes."""
    trained_set = cfg.trained_prompt_set
    if cfg.runner == "local" or cfg.mode == "exact":  # exact mode holds a model and reads images: in-process
        for p in plans:
            yield p, execute(p, train, test, mos, templates, recipe, trained_set, cfg.threads)
        return
    import ray

    from uniqa.runtime import init_ray, user_errors

    init_ray(address)
    task = ray.remote(execute).options(num_cpus=cfg.cpus_per_run)
    train_ref, test_ref = ray.put(train), ray.put(test)
    pending = {task.remote(p, train_ref, test_ref, mos, templates, recipe, trained_set, cfg.threads): p
               for p in plans}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        with user_errors():
            result = ray.get(ready[0])
        yield pending.pop(ready[0]), result


