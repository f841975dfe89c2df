"""``uniqa adapt``: train and evaluate UniQA adapters under the paper's protocols (METHOD §3-§4).

manifest (+ features) -> pre-flight (:func:`preflight`: every check before any work, nothing written) -> the work
(:func:`work`): features (cached: read, or computed with ``uniqa features`` into OUT/features; exact: re-encoded
every epoch) -> runs (Ray tasks, pure torch on features) -> OUT/results.{parquet,csv} (a row per run and
selection), OUT/summary.{parquet,csv} (median, mean +- std), OUT/history.parquet (per evaluation: every epoch, or
every ``val_every`` steps), OUT/adapters/<run>/ (the clean evaluation's head: ``uniqa score --heads
quality=OUT/adapters/split_0``), and the printed table.

Resumable: each finished run leaves its adapter and then ``OUT/runs/<run>.json`` (its result and history rows), so
a rerun of the same command skips those runs (``already_done``) and ends with the same tables as one uninterrupted
run. ``OUT/_run.json`` holds what the results depend on (:func:`identity`: model, recipe, protocol, seeds, not the
execution knobs), pinned by the first run; a rerun with other values is refused (:func:`uniqa.executor.execute`).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, replace

import numpy as np
import pyarrow.compute as pc

from uniqa import storage
from uniqa.adapters.config import EXECUTION, AdaptConfig
from uniqa.adapters.protocols import RunPlan, plan_runs
from uniqa.adapters.results import finished_runs, record_run, write_results
from uniqa.adapters.runs import in_process, run_all, run_threads
from uniqa.adapters.training import HeadTemplate, Recipe
from uniqa.data.images import decode_key, manifest_decode_sizes
from uniqa.errors import UniqaError
from uniqa.models.encoder import FrozenModel, frozen_model
from uniqa.provenance import check_leak, corpus_mask
from uniqa.schema import SPLIT_COLUMNS, check_unique
from uniqa.stage import Outcome, Plan, Run, StageSummary
from uniqa.tables import dataset_schema, parquet_files, read_columns


@dataclass(kw_only=True)
class AdaptPlan(Plan):
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


def preflight(manifest: str, features: str | None, out: str, cfg: AdaptConfig) -> AdaptPlan:
    """Every check that reads storage, before any work and writing nothing: the model, the manifest's columns and
    labels, the runs' sizes, and (given ``features``) the cache's model key and its coverage of the labelled images.
    Features to compute (none given) are left to the work: the plan does not need them (their training views are
    ``cfg.views``). ``out`` is not read: a rerun's finished runs are found by the work. The identity:
    :func:`identity`."""
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
    plan = AdaptPlan(inputs={"manifest": manifest, "features": features}, ids=ids,
                     uris=labelled["image_uri"].to_pylist(), mos=labelled["mos_norm"].to_numpy(), plans=plans,
                     frozen=frozen, train_views=k, rows_in_manifest=len(table), leak=leak, in_corpus=in_corpus,
                     decode=decode)
    plan.identity = identity(cfg, plan)
    return plan


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


def work(plan: AdaptPlan, out: str, cfg: AdaptConfig, run: Run) -> Outcome:
    """Run every run of ``cfg.protocol`` not already finished in ``out`` (none left: no features, no Ray), then
    the tables of all of them; see the module docstring for what lands there."""
    manifest, features = plan.inputs["manifest"], plan.inputs["features"]
    done = finished_runs(out, plan.plans)
    todo = [p for p in plan.plans if p.name not in done]
    failed = None  # images whose features failed (only known when features were read)
    if todo:
        train, test, failed = _features(manifest, features, out, cfg, plan, run.progress, run.address)
        templates = _templates(plan.frozen, cfg)
        recipe = Recipe(cfg.epochs, cfg.batch_size, cfg.lr, cfg.weight_decay, val_every=cfg.val_every)
        runs = [_without(p, failed) for p in todo]
        with contextlib.nullcontext() if in_process(cfg) else run.ray():  # the runs as Ray tasks
            for p, output in run_all(runs, train, test, plan.mos, templates, recipe, cfg):
                done[p.name] = record_run(out, p, output, templates, cfg)
    rows = [{**r, "leaked": leaked(plan, p)} for p in plan.plans for r in done[p.name][0]]
    history = [h for p in plan.plans for h in done[p.name][1]]
    summary = write_results(out, rows, history)
    from uniqa.adapters.results import format_table

    print(format_table(summary))  # the result itself (not progress): printed with --quiet too
    return Outcome(
        rows_in=len(plan.plans), rows_out=len(plan.plans), rows_written=len(todo),
        already_done=len(plan.plans) - len(todo), unit="runs",
        details={"model_checksum": plan.frozen.key, "protocol": cfg.protocol, "mode": cfg.mode,
                 "labelled_images": len(plan.ids), "images_without_features": None if failed is None else len(failed),
                 "threads": run_threads(cfg), "leak": plan.leak, "decode": plan.decode,
                 "pos_embedding": cfg.pos_embedding, "summary": summary},
    )


def run_adapt(manifest: str, features: str | None, out: str, cfg: AdaptConfig, *, progress: bool = True,
              address: str | None = None) -> StageSummary:
    """Run every run of ``cfg.protocol`` on ``manifest`` not already finished in ``out``
    (:func:`uniqa.executor.execute` of this stage); see the module docstring for what lands there."""
    from uniqa.executor import execute

    return execute("adapt", [manifest, features], out, cfg, progress=progress, address=address)


def leaked(prep: AdaptPlan, plan: RunPlan) -> int | None:
    """The run's test images in the model's pre-training corpus (the results' ``leaked`` column); None: unknown."""
    return None if prep.in_corpus is None else int(prep.in_corpus[plan.test].sum())


def identity(cfg: AdaptConfig, prep: AdaptPlan) -> dict:
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


def cached_features(manifest: str, features: str | None, out: str, cfg: AdaptConfig, prep: AdaptPlan,
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


def _exact_test(source, prep: AdaptPlan) -> np.ndarray:
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


def _templates(frozen: FrozenModel, cfg: AdaptConfig) -> dict[str, HeadTemplate]:
    model, tokenizer = frozen.load()
    names = cfg.zero_shot_prompt_sets if cfg.protocol == "zero-shot" else (cfg.trained_prompt_set,)
    return {name: HeadTemplate.from_model(model, tokenizer, name) for name in names}


