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
