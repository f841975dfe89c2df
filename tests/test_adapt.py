"""Adapters and the protocols, without Ray: the documented runs, cached == exact training, bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file as load

from uniqa.adapters.config import AdaptConfig
from uniqa.adapters.protocols import carve, run_seed
from uniqa.adapters.run import preflight, run_adapt
from uniqa.adapters.runs import run_one
from uniqa.adapters.training import HeadTemplate, Recipe
from uniqa.errors import UniqaError
from uniqa.tables import read_columns


@pytest.fixture(scope="module")
def manifest(sample_corpus, tmp_path_factory) -> str:
    from uniqa.data.prepare import prepare

    out = str(tmp_path_factory.mktemp("adapt") / "manifest")
    prepare("kadid10k", f"{sample_corpus}/iqa", out)
    return out


@pytest.fixture(scope="module")
def small_manifest(manifest, tmp_path_factory) -> str:
    """18 images, 6 from each of three references: every split trains on the first two, tests on the third."""
    import pyarrow as pa

    from uniqa.schema import MANIFEST
    from uniqa.tables import write_table

    table = pq.read_table(manifest).sort_by("image_id")
    groups = table["group"].to_pylist()
    chosen = sorted(set(groups))[:3]
    rows = [i for g in chosen for i in [j for j, x in enumerate(groups) if x == g][:6]]
    table = table.take(rows)
    sides = pa.array(["test" if g == chosen[2] else "train" for g in table["group"].to_pylist()])
    for i in range(10):
        table = table.set_column(table.schema.get_field_index(f"split_{i}"), f"split_{i}", sides)
    out = str(tmp_path_factory.mktemp("small") / "manifest")
    write_table(table, out, MANIFEST)
    return out


def test_validation_holds_whole_groups_and_enough_images():
    """A validation SRCC over 5 images picks epochs by chance: carve adds whole groups until ``min_images``."""
    positions = np.arange(48)
    singles = np.array([f"img{i}" for i in positions])  # AVA-style: every image its own group
    val = carve(positions, singles, 0.1, np.random.default_rng(0), min_images=16)
    assert len(val) == 16 and len(carve(positions, singles, 0.1, np.random.default_rng(0))) == 5  # ceil(0.1 * 48)
    refs = np.repeat([f"I{r}" for r in range(6)], 8)  # 6 references x 8 images
    val = carve(positions, refs, 0.1, np.random.default_rng(0), min_images=16)
    assert len(set(refs[val])) == 2 and len(val) == 16  # one group (8 images) is not enough: two whole groups
    assert len(carve(positions, refs, 0.1, np.random.default_rng(0), min_images=1000)) == 40  # never all groups
    assert len(carve(positions[:8], refs[:8], 0.1, np.random.default_rng(0), min_images=16)) == 0  # one group: none


def test_runs_are_as_documented(manifest):
    """The runs, sizes and seeds of every protocol on the sample corpus (40 references x 60 images; the manifest's
    split_i puts 32 references in train)."""
    full = preflight(manifest, None, "", AdaptConfig(model="uniqa-tiny", protocol="full"))
    assert [p.name for p in full.plans] == [f"split_{i}" for i in range(10)]
    assert {(len(p.train), len(p.val), len(p.test), p.labels) for p in full.plans} == {(1920, 240, 480, 1920)}
    assert [p.seed for p in full.plans] == [run_seed(0, f"full/split_{i}") for i in range(10)]
    assert run_seed(0, "full/split_0") == 1808129441  # sha256-based: the same on every machine
    groups = np.array([i.split("_")[0] for i in full.ids])
    for plan in full.plans:
        train_groups, val_groups = set(groups[plan.train]), set(groups[plan.val])
        assert not train_groups & set(groups[plan.test])  # a reference never on both sides
        assert len(val_groups) == 4 and val_groups < train_groups  # the clean run holds out whole groups (10%)
        assert not set(groups[plan.clean_train]) & val_groups
    few = preflight(manifest, None, "", AdaptConfig(model="uniqa-tiny", protocol="few-label"))
    assert [(p.name, p.split, p.labels, len(p.train), len(p.test)) for p in few.plans] == [
        (f"n{n}-seed{j}", j, n, n, 480) for n in (50, 100, 200) for j in range(5)]
    for plan in few.plans:
        side = full.plans[plan.split]
        assert set(plan.train) <= set(side.train) and np.array_equal(plan.test, side.test)
        assert 0 < len(plan.val) < plan.labels
    assert not np.array_equal(few.plans[0].train, few.plans[1].train)  # seeds draw different images
    again = preflight(manifest, None, "", AdaptConfig(model="uniqa-tiny", protocol="few-label"))
    assert all(np.array_equal(a.train, b.train) for a, b in zip(few.plans, again.plans))
    zero = preflight(manifest, None, "", AdaptConfig(model="uniqa-tiny", protocol="zero-shot", splits=(0, 3)))
    assert [(p.name, len(p.test)) for p in zero.plans] == [("split_0", 480), ("split_3", 480)]


def _cached_features(manifest: str, train_views: int, out: str) -> str:
    """The feature cache of ``manifest`` made in-process by the stage's own pure functions."""
    from uniqa.data.images import DecodeConfig
    from uniqa.executor import check_identity as pin_identity
    from uniqa.features.batches import feature_views_batch, write_features
    from uniqa.features.config import FeaturesConfig
    from uniqa.features.run import identity
    from uniqa.models.encoder import ImageEncoder, encode_numpy, frozen_model

    frozen = frozen_model("uniqa-tiny", None, 0)
    cfg = FeaturesConfig(model="uniqa-tiny", train_views=train_views)
    model, _ = frozen.load()
    encoder = ImageEncoder(model, cfg.views_per_pass)
    rows = read_columns(manifest, ["image_id", "image_uri"])
    batch = {k: np.array(rows[k].to_pylist(), dtype=object) for k in rows.column_names}
    views = feature_views_batch(batch, DecodeConfig(), 64, train_views, "crops10", 0)
    feats = encode_numpy(encoder, views["views"]).numpy()
    pin_identity(out, identity(cfg, frozen))
    write_features({"image_id": views["image_id"], "features": feats, "error": views["error"]}, out, train_views,
                   "crops10", frozen.key, cfg.protocol(64), 0)
    return out


def test_cached_training_equals_exact_training(small_manifest, tmp_path):
    """Same views (same seeds) -> the same adapter weights, whether the features come from the cache or are
    re-cropped and re-encoded from the images every epoch."""
    from uniqa.adapters.exact import ExactSource
    from uniqa.features.read import load_features
    from uniqa.models.encoder import ImageEncoder, frozen_model

    features = _cached_features(small_manifest, 3, str(tmp_path / "features"))
    cfg = AdaptConfig(model="uniqa-tiny", epochs=5, train_views=3, runner="local", val_fraction=0.5)
    prep = preflight(small_manifest, features, "", cfg)  # "": no output (out is not read)
    cached = load_features(features, prep.ids, 3, 10)
    model, tokenizer = frozen_model("uniqa-tiny", None, 0).load()
    templates = {"quality": HeadTemplate.from_model(model, tokenizer, "quality")}
    recipe = Recipe(epochs=5)
    plan = prep.plans[0]
    exact = ExactSource(prep.uris, prep.ids, ImageEncoder(model, cfg.views_per_pass), 0, 3)
    assert torch.allclose(exact.test(np.arange(len(prep.ids))), torch.from_numpy(cached.test), atol=1e-5)
    rows_c, hist_c, state_c = run_one(plan, cached.train, cached.test, prep.mos, templates, recipe, "quality")
    rows_e, hist_e, state_e = run_one(plan, exact, cached.test, prep.mos, templates, recipe, "quality")
    assert set(state_c) == {"prompt_embeddings", "logit_scale", "down.weight", "up.weight", "levels"}
    for key in state_c:
        assert torch.allclose(state_c[key], state_e[key], atol=1e-5), key
    initial = templates["quality"].head(adapter=True, seed=plan.seed).state_dict()
    assert (state_c["up.weight"] - initial["up.weight"]).abs().max() > 1e-4  # it trained
    assert [h["loss"] for h in hist_c] == pytest.approx([h["loss"] for h in hist_e], abs=1e-5)
    assert [r["srcc"] for r in rows_c] == pytest.approx([r["srcc"] for r in rows_e], abs=1e-5)


def test_a_rerun_skips_finished_runs_and_ends_with_the_same_tables(small_manifest, tmp_path):
    features = _cached_features(small_manifest, 2, str(tmp_path / "features"))
    out = tmp_path / "out"
    cfg = AdaptConfig(model="uniqa-tiny", epochs=3, train_views=2, splits=(0, 1, 2), runner="local", val_fraction=0.5)
    first = run_adapt(small_manifest, features, str(out), cfg)
    assert (first.rows_written, first.already_done) == (3, 0)
    results = pq.read_table(out / "results.parquet").to_pandas()
    weights = load(out / "adapters" / "split_1" / "head.safetensors")
    skipped = (out / "adapters" / "split_0" / "head.safetensors").read_bytes()
    (out / "runs" / "split_1.json").unlink()  # as if killed before split_1 finished
    (out / "runs" / "split_2.json").write_text('{"rows": [')  # ... or while writing split_2's rows
    again = run_adapt(small_manifest, features, str(out), replace(cfg, threads=2))  # execution knobs may change
    assert (again.rows_written, again.already_done, again.complete) == (2, 1, True)
    # the rerun's 2 torch threads may sum in another order than the first run's 1 (seen on a busy 2-core machine:
    # PLCC 0.521244 vs 0.521242): the same tables and weights up to 1e-5; every other column exactly
    pd.testing.assert_frame_equal(pq.read_table(out / "results.parquet").to_pandas(), results, check_exact=False,
                                  rtol=0, atol=1e-5)
    rerun = load(out / "adapters" / "split_1" / "head.safetensors")
    assert rerun.keys() == weights.keys()
    for key in weights:
        assert torch.allclose(rerun[key], weights[key], rtol=0, atol=1e-5), key
    assert (out / "adapters" / "split_0" / "head.safetensors").read_bytes() == skipped  # not run again: as it was
    done = run_adapt(small_manifest, features, str(out), cfg)
    assert (done.rows_written, done.already_done) == (0, 3)
    with pytest.raises(UniqaError, match="holds output made with lr=0.0002, this run has lr=0.001"):
        run_adapt(small_manifest, features, str(out), replace(cfg, lr=1e-3))


def test_bad_input_fails_before_any_work(manifest, small_manifest, tmp_path):
    features = _cached_features(small_manifest, 2, str(tmp_path / "features"))
    out = tmp_path / "out"
    cfg = AdaptConfig(model="uniqa-tiny", seed=1, runner="local")  # seed 1: another random-init model
    with pytest.raises(UniqaError, match="were made with model_checksum 'uniqa-tiny@random-init:seed=0'"):
        run_adapt(small_manifest, features, str(out), cfg)
    with pytest.raises(UniqaError, match="lack 2382 labelled images"):
        run_adapt(manifest, features, str(out), AdaptConfig(model="uniqa-tiny", runner="local"))
    with pytest.raises(UniqaError, match="few-label size 2000 needs 2000 labelled training images, but split_0 has "
                                         "only 1920"):
        run_adapt(manifest, None, str(out), AdaptConfig(model="uniqa-tiny", protocol="few-label",
                                                        few_label_sizes=(50, 2000)))
    no_mos = pq.read_table(f"{manifest}/part-00000.parquet").drop_columns(["mos_norm"])
    (tmp_path / "nomos").mkdir()
    pq.write_table(no_mos, tmp_path / "nomos" / "part-0.parquet")
    with pytest.raises(UniqaError, match="has no column 'mos_norm'"):
        run_adapt(str(tmp_path / "nomos"), None, str(out), AdaptConfig(model="uniqa-tiny"))
    assert not out.exists()  # nothing was written: every check ran first


@pytest.mark.parametrize("field,value,match", [
    ("protocol", "fewshot", "protocol must be one of"), ("head", "beauty", "head must be one of"),
    ("epochs", 0, "epochs must be a positive integer"), ("splits", (0, 10), "split_0 .. split_9"),
    ("few_label_sizes", (2,), ">= 3 images"), ("mode", "fast", "mode must be one of"),
    ("prompt_set", "nope", "unknown prompt set"), ("val_fraction", 1.0, "val_fraction"),
])
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(UniqaError, match=match):
        AdaptConfig(model="uniqa-tiny", **{field: value})


def _synthetic(n: int = 24, d: int = 16):
    """A head template over random prompt embeddings, random training features of ``n`` images (3 views) and their
    targets, and a random test set of 12 images (10 views)."""
    import math

    from uniqa.adapters.prompts import get_prompt_set

    g = torch.Generator().manual_seed(0)
    embeddings = torch.nn.functional.normalize(torch.randn(1, 5, d, generator=g), dim=-1)
    template = HeadTemplate(get_prompt_set("quality"), embeddings, torch.tensor(math.log(100.0)))
    train = torch.randn(n, 3, d, generator=g).numpy()
    evals = {"test": (torch.randn(12, 10, d, generator=g), np.random.default_rng(1).random(12))}
    return template, train, np.random.default_rng(0).random(n), evals


def _train(recipe: Recipe, on_epoch=None, source=None):
    """``train_head`` on :func:`_synthetic` (24 images, batch 8: 3 optimiser steps an epoch), seed 3."""
    from uniqa.adapters.training import cached_source, train_head

    template, train, mos, evals = _synthetic()
    source = cached_source(train) if source is None else source
    return train_head(template, source, np.arange(len(mos)), mos, evals, "test", recipe, 3, on_epoch)


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_epoch_validation_is_the_documented_loop():
    """val_every=None (as before): Adam, cosine stepped once per epoch, batches in ``default_rng([seed, e])`` order
    on view ``e % K``, an evaluation after every epoch, the first best SRCC kept; ``step`` counts across epochs."""
    import copy

    from uniqa.adapters.training import correlations, predict

    result = _train(Recipe(epochs=4, lr=1e-2))
    template, train, mos, evals = _synthetic()
    head = template.head(adapter=True, seed=3)
    opt = torch.optim.Adam([p for p in head.parameters() if p.requires_grad], lr=1e-2, fused=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    states, srcc = [], []
    for epoch in range(4):
        order = np.random.default_rng([3, epoch]).permutation(24)
        for start in range(0, 24, 8):
            idx = order[start : start + 8]
            target = torch.tensor(mos[idx], dtype=torch.float32)
            loss = torch.nn.functional.mse_loss(head(torch.from_numpy(train[idx, epoch % 3])), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        states.append(copy.deepcopy(head.state_dict()))
        srcc.append(correlations(predict(head, evals["test"][0]), evals["test"][1])["srcc"])
    best = int(np.argmax(srcc))
    assert [(h["epoch"], h["step"]) for h in result.history] == [(1, 3), (2, 6), (3, 9), (4, 12)]
    assert [h["test_srcc"] for h in result.history] == srcc
    assert (result.epoch, result.step) == (best + 1, 3 * (best + 1))
    assert _same_state(result.state, states[best])


def test_val_every_evaluates_every_nth_step_across_epochs():
    """val_every=N evaluates after steps N, 2N, ... (the reference's ``current_iter % val_freq == 0``) and at the
    end of training; the weights are those of epoch validation, only when they are evaluated differs."""
    epochs = _train(Recipe(epochs=4, lr=1e-2))
    per_epoch = _train(Recipe(epochs=4, lr=1e-2, val_every=3))  # 3 steps an epoch: the same evaluations
    assert per_epoch.history == epochs.history and (per_epoch.epoch, per_epoch.step) == (epochs.epoch, epochs.step)
    assert _same_state(per_epoch.state, epochs.state)
    two = _train(Recipe(epochs=4, lr=1e-2, val_every=2))
    assert [(h["epoch"], h["step"]) for h in two.history] == [(1, 2), (2, 4), (2, 6), (3, 8), (4, 10), (4, 12)]
    at_epoch_end = {h["step"]: h["test_srcc"] for h in two.history}
    assert [at_epoch_end[s] for s in (6, 12)] == [epochs.history[1]["test_srcc"], epochs.history[3]["test_srcc"]]
    best = max(two.history, key=lambda h: h["test_srcc"])  # the first best
    assert (two.epoch, two.step, two.metrics["test"]["srcc"]) == (best["epoch"], best["step"], best["test_srcc"])
    five = _train(Recipe(epochs=4, lr=1e-2, val_every=5))  # steps 5 and 10, then the end of training
    assert [(h["epoch"], h["step"]) for h in five.history] == [(2, 5), (4, 10), (4, 12)]
    assert five.history[-1]["test_srcc"] == epochs.history[-1]["test_srcc"]


def test_val_every_longer_than_training_evaluates_once_at_the_end():
    """Fewer steps (12) than val_every: one evaluation, of the final weights, so a result exists; its loss is the
    mean over the whole training."""
    result = _train(Recipe(epochs=4, lr=1e-2, val_every=100))
    epochs = _train(Recipe(epochs=4, lr=1e-2))
    assert [(h["epoch"], h["step"]) for h in result.history] == [(4, 12)] and (result.epoch, result.step) == (4, 12)
    assert result.history[0]["test_srcc"] == epochs.history[-1]["test_srcc"]
    assert result.history[0]["loss"] == pytest.approx(np.mean([h["loss"] for h in epochs.history]), rel=1e-6)
    assert _same_state(result.state, _train(Recipe(epochs=4, lr=1e-2, val_every=12)).state)  # step 12's weights


def test_val_every_stops_when_the_hook_asks_and_works_on_a_callable_source():
    """The hook gets each evaluation's row; True stops there (no evaluation at the end). A ``TrainFeatures``
    callable (the exact mode's kind of source) is asked once per epoch, as without val_every."""
    rows = []
    stopped = _train(Recipe(epochs=4, lr=1e-2, val_every=2), lambda row: rows.append(row) or row["step"] >= 4)
    assert [r["step"] for r in rows] == [2, 4] and rows == stopped.history
    _, train, _, _ = _synthetic()
    asked = []

    def source(epoch: int, positions: np.ndarray) -> torch.Tensor:
        asked.append(epoch)
        return torch.from_numpy(train[positions, epoch % 3])

    called = _train(Recipe(epochs=4, lr=1e-2, val_every=2), source=source)
    cached = _train(Recipe(epochs=4, lr=1e-2, val_every=2))
    assert asked == [0, 1, 2, 3] and called.history == cached.history and _same_state(called.state, cached.state)


def test_recipe_rejects_a_bad_val_every():
    with pytest.raises(UniqaError, match="val_every must be a positive integer or None, got 0"):
        Recipe(val_every=0)


def test_zero_shot_over_all_images_is_one_run_without_split_columns():
    from uniqa.adapters.protocols import plan_runs
    from uniqa.adapters.results import summarise

    groups = np.array([f"I{i // 4}" for i in range(24)], dtype=object)
    kw = dict(seed=0, split_ids=(0, 1), sizes=(50,), few_seeds=(0,), val_fraction=0.1)
    (plan,) = plan_runs("zero-shot", {}, groups, zero_shot_images="all", **kw)
    assert (plan.name, plan.protocol, plan.split, plan.labels, plan.few_seed) == ("all", "zero-shot", -1, 0, None)
    assert np.array_equal(plan.test, np.arange(24)) and not len(plan.train) and not len(plan.val)
    assert plan.seed == run_seed(0, "zero-shot/all")
    template, _, _, _ = _synthetic()
    test = torch.randn(24, 10, 16, generator=torch.Generator().manual_seed(2)).numpy()
    mos = np.random.default_rng(4).random(24)
    rows, history, state = run_one(plan, np.zeros((24, 1, 16), np.float32), test, mos, {"quality": template},
                                   Recipe(), "quality")
    assert [(r["run"], r["split"], r["n_test"], r["selection"]) for r in rows] == [("all", -1, 24, "zero-shot")]
    assert (history, state) == ([], {}) and summarise(rows)[0]["runs"] == 1
    with pytest.raises(UniqaError, match="zero_shot_images=all applies to protocol zero-shot, got protocol full"):
        plan_runs("full", {}, groups, zero_shot_images="all", **kw)
    with pytest.raises(UniqaError, match="the manifest has 2 labelled images; a correlation needs at least 3"):
        plan_runs("zero-shot", {}, groups[:2], zero_shot_images="all", **kw)


def test_config_refuses_zero_shot_images_all_outside_zero_shot_and_checks_new_fields():
    from uniqa.adapters.config import AdaptConfig

    with pytest.raises(UniqaError, match="zero_shot_images=all applies to protocol zero-shot, got protocol few-label"):
        AdaptConfig(model="uniqa-tiny", protocol="few-label", zero_shot_images="all")
    for field, bad, match in (("zero_shot_images", "some", r"zero_shot_images must be one of \['test', 'all'\]"),
                              ("val_every", 0, "val_every must be a positive integer, got 0"),
                              ("decode_size", -1, "decode_size must be a positive integer, got -1"),
                              ("pos_embedding", "no", "pos_embedding must be true or false, got 'no'")):
        with pytest.raises(UniqaError, match=match):
            AdaptConfig(model="uniqa-tiny", **{field: bad})
    assert AdaptConfig(model="uniqa-tiny", protocol="zero-shot", zero_shot_images="all").zero_shot_images == "all"


def test_zero_shot_needs_no_training_side():
    """A test-only manifest (e.g. the held-out side written on its own) is enough for zero-shot, not for full."""
    from uniqa.adapters.protocols import plan_runs

    groups = np.array([f"I{i // 4}" for i in range(12)], dtype=object)
    splits = {"split_0": np.array(["test"] * 12, dtype=object)}
    kw = dict(seed=0, split_ids=(0,), sizes=(50,), few_seeds=(0,), val_fraction=0.1)
    (plan,) = plan_runs("zero-shot", splits, groups, **kw)
    assert len(plan.test) == 12 and not len(plan.train)
    with pytest.raises(UniqaError, match="split_0 has 0 labelled training images; nothing to train on"):
        plan_runs("full", splits, groups, **kw)
