"""``uniqa features`` on Ray: exactly-once and resumable per image, keyed by model + protocol + seed, and the
same features as the stage's pure functions give in-process."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from uniqa import sink
from uniqa.errors import UniqaError
from uniqa.features.config import FeaturesConfig
from uniqa.features.read import load_features
from uniqa.features.run import run_features
from uniqa.stage import read_summary
from uniqa.tables import read_columns

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def manifest(sample_corpus, tmp_path_factory) -> str:
    """12 images of the sample corpus (KADID format)."""
    from uniqa.data.prepare import prepare
    from uniqa.schema import MANIFEST
    from uniqa.tables import write_table

    full = str(tmp_path_factory.mktemp("feat") / "full")
    prepare("kadid10k", f"{sample_corpus}/iqa", full)
    out = str(tmp_path_factory.mktemp("feat") / "manifest")
    write_table(pq.read_table(full).sort_by("image_id").slice(0, 12), out, MANIFEST)
    return out


@pytest.mark.timeout(600)
def test_features_stage_resumes_and_matches_the_pure_path(ray_session, manifest, tmp_path):
    from test_adapt import _cached_features

    cfg = FeaturesConfig(model="uniqa-tiny", train_views=2, rows_per_file=4, rows_per_block=4, num_cpus=0.5,
                         decode_cpus=0.5)
    out = str(tmp_path / "f")
    first = run_features(manifest, out, cfg, progress=False)
    assert (first.rows_in, first.rows_out, first.rows_written, first.already_done) == (12, 12, 12, 0)
    table = read_columns(out, ["image_id", "view_kind", "view_index", "model_checksum", "protocol", "seed"])
    assert len(table) == 12 * (2 + 10)
    assert set(table["model_checksum"].to_pylist()) == {"uniqa-tiny@random-init:seed=0"}
    assert set(table["protocol"].to_pylist()) == {"train2-flipcrop64+crops10-64"}
    assert read_summary(out)["details"]["train_views"] == 2
    ids = read_columns(manifest, ["image_id"])["image_id"].to_pylist()
    ray_feats = load_features(out, ids, 2, 10)
    pure = load_features(_cached_features(manifest, 2, str(tmp_path / "pure")), ids, 2, 10)
    assert np.allclose(ray_feats.train, pure.train, atol=1e-5) and np.allclose(ray_feats.test, pure.test, atol=1e-5)

    again = run_features(manifest, out, cfg, progress=False)
    assert (again.rows_written, again.already_done, again.rows_out) == (0, 12, 12)
    victim = sorted(sink.part_names(out))[0]
    lost = set(pq.read_table(os.path.join(out, victim), columns=["image_id"])["image_id"].to_pylist())
    os.remove(os.path.join(out, victim))
    resumed = run_features(manifest, out, cfg, progress=False)
    assert resumed.rows_written == len(lost) and resumed.rows_out == 12
    assert len(read_columns(out, ["image_id"])) == 12 * 12  # no view duplicated, none lost
    assert np.array_equal(load_features(out, ids, 2, 10).train, ray_feats.train)

    with pytest.raises(UniqaError, match="seed"):
        run_features(manifest, out, FeaturesConfig(model="uniqa-tiny", train_views=2, seed=1), progress=False)


@pytest.mark.timeout(600)
def test_spaq_features_at_448_and_the_leak_check(ray_session, tmp_path):
    """`uniqa features` on a SPAQ manifest decodes every photo at 448 px on the shorter side (the manifest's
    decode_size), keys the cache by it and says so in its summary; a model whose pre-training record holds the
    manifest's test side (split_* = test) is refused, and with allow_leak the overlap is recorded."""
    import json
    from dataclasses import replace

    import torch
    from dataset_fixtures import make_spaq_photos

    from uniqa.data.images import DecodeConfig
    from uniqa.features.batches import feature_views_batch
    from uniqa.features.run import preflight
    from uniqa.models import create_model, save_checkpoint
    from uniqa.models.encoder import ImageEncoder, encode_numpy, frozen_model
    from uniqa.provenance import id_hashes, write_record
    from uniqa.schema import SPLIT_COLUMNS

    manifest = make_spaq_photos(tmp_path)
    rows = read_columns(manifest, ["image_id", "image_uri", "decode_size", *SPLIT_COLUMNS]).to_pydict()
    test_side = {i for c in SPLIT_COLUMNS for i, side in zip(rows["image_id"], rows[c]) if side == "test"}
    torch.manual_seed(0)
    model, _, _ = create_model("uniqa-tiny")
    final = str(tmp_path / "final")
    save_checkpoint(model, "uniqa-tiny", final)
    write_record(final, id_hashes(rows["image_id"]), "a corpus without holdout")
    cfg = FeaturesConfig(model=final, train_views=1, num_cpus=0.5, decode_cpus=0.5)
    out = str(tmp_path / "f")
    n = len(test_side)
    with pytest.raises(UniqaError, match=rf"{n} of the {n} test-side images of manifest .* --allow-leak"):
        run_features(manifest, out, cfg, progress=False)
    no_splits = tmp_path / "no_splits"
    no_splits.mkdir()
    pq.write_table(pq.read_table(manifest, columns=["image_id", "image_uri"]), no_splits / "part-0.parquet")
    leak = preflight(str(no_splits), out, cfg).leak  # no split columns: nothing to check, the provenance still said
    assert leak["leaked"] is None and leak["provenance"].endswith("corpus_ids.parquet")
    split_0 = [i for i, side in zip(rows["image_id"], rows["split_0"]) if side == "test"]
    one = preflight(manifest, out, replace(cfg, leak_splits=("split_0",), allow_leak=True)).leak  # the split evaluated
    assert one["leaked"] == len(split_0) < n and set(one["examples"]) == set(split_0)

    summary = run_features(manifest, out, replace(cfg, allow_leak=True), progress=False)
    assert summary.complete and summary.details["leak"]["leaked"] == n
    assert summary.details["decode"] == "448" and summary.details["pos_embedding"] is True
    assert "allow_leak" not in json.loads((tmp_path / "f" / "_run.json").read_text())  # not part of the identity
    protocols = set(read_columns(out, ["protocol"])["protocol"].to_pylist())
    assert protocols == {"train1-flipcrop64+crops10-64@decode448"}
    frozen = frozen_model(final)
    encoder = ImageEncoder(frozen.load()[0], cfg.views_per_pass)
    batch = {k: np.array(rows[k], dtype=object) for k in ("image_id", "image_uri", "decode_size")}
    views = feature_views_batch(batch, DecodeConfig(), 64, 1, "crops10", 0)["views"]
    at_448 = encode_numpy(encoder, views).numpy()
    native = encode_numpy(encoder, feature_views_batch({k: batch[k] for k in ("image_id", "image_uri")},
                                                       DecodeConfig(), 64, 1, "crops10", 0)["views"]).numpy()
    cached = load_features(out, rows["image_id"], 1, 10)
    assert np.allclose(cached.test, at_448[:, 1:], atol=1e-5) and np.allclose(cached.train[:, 0], at_448[:, 0],
                                                                                atol=1e-5)
    assert not np.allclose(cached.test, native[:, 1:], atol=1e-3)  # not the photos as stored
    with pytest.raises(UniqaError, match="protocol"):  # features decoded otherwise never join these
        run_features(manifest, out, replace(cfg, allow_leak=True, decode_size=60), progress=False)
