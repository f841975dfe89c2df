"""Feature cache, pure parts: the view layout, per-image seeded views, the exploded rows and reading them back."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from uniqa import sink
from uniqa.data.images import DecodeConfig
from uniqa.data.views import image_views, train_view
from uniqa.errors import UniqaError
from uniqa.executor import check_identity as pin_identity
from uniqa.features.batches import feature_views_batch, features_table, view_layout, write_features
from uniqa.features.config import FeaturesConfig
from uniqa.features.read import check_identity, load_features, missing_ids
from uniqa.models.encoder import ImageEncoder, frozen_model
from uniqa.schema import FEATURES


def png(h: int, w: int, seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_view_layout_and_protocol_name():
    kinds, index = view_layout(3, "crops10")
    assert kinds == ["train"] * 3 + ["test"] * 10 and index == [0, 1, 2, *range(10)]
    assert FeaturesConfig(model="uniqa-tiny", train_views=3).protocol(64) == "train3-flipcrop64+crops10-64"
    assert FeaturesConfig(model="m", decode_size=96).protocol(64) == "train20-flipcrop64+crops10-64@decode96"
    with pytest.raises(UniqaError, match="test_views must be one of"):
        FeaturesConfig(model="m", test_views="crops7")
    with pytest.raises(UniqaError, match="train_views"):
        FeaturesConfig(model="m", train_views=-1)


def test_decode_tasks_fill_a_byte_budget_of_views():
    """Like scoring (uniqa.runtime.views_block_rows): K + T views of 64 px, 64 MiB a block, two blocks an actor on
    small inputs; 16-row blocks made ~300 tiny tasks of 5,000 images and halved the stage's throughput."""
    cfg = FeaturesConfig(model="uniqa-tiny", train_views=20, test_views="crops10", num_actors=2)
    assert cfg.block_rows(64) == 64 * 2**20 // (30 * 64 * 64 * 3) == 182
    assert cfg.block_rows(64, total=100_000) == 182
    assert cfg.block_rows(64, total=1_000_000) == 500  # at most 2,000 blocks (runtime.MAX_BLOCKS)
    assert cfg.block_rows(64, total=300) == 75  # 4 blocks for 2 actors
    assert cfg.block_rows(64, total=20) == 16  # never below 16 rows
    assert cfg.block_rows(1024) == 16
    assert FeaturesConfig(model="uniqa-tiny", rows_per_block=7).block_rows(64, total=10**6) == 7  # given: as given
    with pytest.raises(UniqaError, match="rows_per_block must be a positive integer or null, got 0"):
        FeaturesConfig(model="uniqa-tiny", rows_per_block=0)


def test_views_batch_is_seeded_per_image_and_errors_stay_rows():
    data = png(90, 120, 0)
    batch = {"image_id": np.array(["a", "b", "bad"], dtype=object),
             "image_uri": np.array([data, data, b"not an image"], dtype=object)}
    out = feature_views_batch(batch, DecodeConfig(), 32, 2, "crops10", seed=4)
    assert out["views"].shape == (3, 12, 32, 32, 3)
    image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(out["views"][0, 1], train_view(image, 32, 4, "a", 1))
    assert np.array_equal(out["views"][0, 2:], image_views(image, "crops10", 32, 4, "a"))
    assert not np.array_equal(out["views"][0], out["views"][1])  # same pixels, other id: other views
    assert out["error"][0] is None and "not an image" in out["error"][2]
    assert not out["views"][2].any()


def test_rows_written_and_read_back(tmp_path):
    feats = np.arange(3 * 12 * 5, dtype=np.float32).reshape(3, 12, 5)  # 3 images, K=2 + 10 test views, D=5
    batch = {"image_id": np.array(["x", "y", "z"], dtype=object), "features": feats,
             "error": np.array([None, "y.png: corrupt", None], dtype=object)}
    table = features_table(batch, 2, "crops10", "m@k", "proto", 7)
    assert table.schema.names == FEATURES.columns
    assert len(table) == 12 + 1 + 12  # a row per view; one row for the failed image
    assert table["feature"].null_count == 1 and table["error"].to_pylist().count("y.png: corrupt") == 1
    assert table["view_kind"].to_pylist()[:3] == ["train", "train", "test"]
    assert set(table["model_checksum"].to_pylist()) == {"m@k"} and set(table["seed"].to_pylist()) == {7}
    out = str(tmp_path / "f")
    counts = write_features(batch, out, 2, "crops10", "m@k", "proto", 7)
    assert counts.to_pylist()[0]["rows"] == 3 and counts.to_pylist()[0]["errors"] == 1  # counted in images
    assert sink.output_state(out).id_set() == {"x", "y", "z"}
    pin_identity(out, {"model_checksum": "m@k", "seed": 7, "train_views": 2, "test_views": "crops10"})
    cached = load_features(out, ["z", "x", "y"], 2, 10)
    assert np.array_equal(cached.train[0], batch["features"][2, :2])
    assert np.array_equal(cached.test[1], batch["features"][0, 2:])
    assert cached.failed == {"y": "y.png: corrupt"} and not cached.test[2].any()
    assert missing_ids(out, ["x", "w"]) == ["w"]
    with pytest.raises(UniqaError, match="were made with model_checksum 'm@k'.*another model"):
        check_identity(out, {"model_checksum": "other@k"})


def test_encoder_is_the_scorers_and_batch_independent():
    """ImageEncoder (shared by scoring, features and exact training): chunked, so a view's features never depend
    on its neighbours, and equal to open_clip's own preprocessing + encode_image."""
    frozen = frozen_model("uniqa-tiny", None, seed=0)
    model, _ = frozen.load()
    assert frozen.key == "uniqa-tiny@random-init:seed=0" and frozen.image_size == 64
    encoder = ImageEncoder(model, chunk=8)
    views = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (11, 64, 64, 3), dtype=np.uint8))
    whole = encoder(views)
    assert whole.shape == (11, 64)
    assert torch.equal(torch.cat([encoder(views[:3]), encoder(views[3:])]), whole)
    mean = torch.tensor(model.visual.preprocess_cfg["mean"]).view(3, 1, 1)
    std = torch.tensor(model.visual.preprocess_cfg["std"]).view(3, 1, 1)
    with torch.no_grad():
        direct = model.encode_image((views.permute(0, 3, 1, 2).float() / 255 - mean) / std)
    assert torch.allclose(whole, direct, atol=1e-5)
    model2, _ = frozen_model("uniqa-tiny", None, seed=0).load()  # a seeded random init: the same weights
    assert torch.equal(ImageEncoder(model2, chunk=8)(views), whole)
    assert frozen_model("uniqa-tiny", None, seed=1).key != frozen.key
    with pytest.raises(UniqaError, match="no such checkpoint"):
        frozen_model("runs/none/final")


def test_a_rows_decode_size_resizes_before_the_views_unless_the_run_sets_one():
    """SPAQ rows (decode_size 448 in the manifest) are resized to 448 on the shorter side before their crops, as
    the reference does; a null row is cut as stored; the config's decode_size wins for every row."""
    from uniqa.data.images import load_image

    data = png(60, 90, 1)
    batch = {"image_id": np.array(["spaq/a", "b"], dtype=object), "image_uri": np.array([data, data], dtype=object),
             "decode_size": np.array([448, np.nan])}  # Ray hands a null int over as NaN
    out = feature_views_batch(batch, DecodeConfig(), 64, 1, "crops10", seed=0)
    at_448 = load_image(data, DecodeConfig(size=448))
    assert at_448.shape == (448, 672, 3)
    assert np.array_equal(out["views"][0, 0], train_view(at_448, 64, 0, "spaq/a", 0))
    assert np.array_equal(out["views"][0, 1:], image_views(at_448, "crops10", 64, 0, "spaq/a"))
    native = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(out["views"][1, 1:], image_views(native, "crops10", 64, 0, "b"))
    forced = feature_views_batch(batch, DecodeConfig(size=96), 64, 1, "crops10", seed=0)
    at_96 = load_image(data, DecodeConfig(size=96))
    assert np.array_equal(forced["views"][0, 1:], image_views(at_96, "crops10", 64, 0, "spaq/a"))
    assert np.array_equal(forced["views"][1, 1:], image_views(at_96, "crops10", 64, 0, "b"))


def test_decode_sizes_and_the_switch_are_part_of_the_features_key():
    from uniqa.features.run import identity

    cfg = FeaturesConfig(model="uniqa-tiny", train_views=3)
    assert cfg.protocol(64, [None]) == "train3-flipcrop64+crops10-64"  # as stored: the key of earlier caches
    assert cfg.protocol(64, [448]) == "train3-flipcrop64+crops10-64@decode448"
    assert cfg.protocol(64, [448, None]) == "train3-flipcrop64+crops10-64@decode448,native"
    assert FeaturesConfig(model="m", decode_size=96).protocol(64, [448, None]).endswith("@decode96")  # run's wins
    frozen = frozen_model("uniqa-tiny", None, seed=0)
    assert identity(cfg, frozen, [None])["decode"] is None and identity(cfg, frozen, [448])["decode"] == "448"
    off = frozen_model("uniqa-tiny", None, seed=0, pos_embedding=False)
    assert off.key == "uniqa-tiny@random-init:seed=0+no-pos-embedding" and not off.pos_embedding
    assert identity(cfg, off)["model_checksum"] != identity(cfg, frozen)["model_checksum"]
    for field, value in (("pos_embedding", "no"), ("allow_leak", 1)):
        with pytest.raises(UniqaError, match=f"{field} must be true or false"):
            FeaturesConfig(model="m", **{field: value})
    assert FeaturesConfig(model="m", leak_splits="split_0").leak_splits == ("split_0",)
    with pytest.raises(UniqaError, match="leak_splits has 'split_10', not a split column"):
        FeaturesConfig(model="m", leak_splits=["split_10"])


def test_exact_mode_decodes_like_the_cache(tmp_path):
    """ExactSource (adapt --mode exact) reads each row's decode size from the manifest: the same views, so the same
    features, as the cache."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from uniqa.adapters.exact import ExactSource, manifest_row_sizes
    from uniqa.models.encoder import encode_numpy

    paths = []
    for i, (h, w) in enumerate([(60, 90), (70, 50)]):
        paths.append(str(tmp_path / f"{i}.png"))
        (tmp_path / f"{i}.png").write_bytes(png(h, w, i))
    ids = ["spaq/0", "k/1"]
    (tmp_path / "m").mkdir()
    pq.write_table(pa.table({"image_id": ids, "image_uri": paths, "decode_size": pa.array([448, None], pa.int32())}),
                   tmp_path / "m" / "part-0.parquet")
    sizes = manifest_row_sizes(str(tmp_path / "m"), ["k/1", "spaq/0", "other"])
    assert sizes == [None, 448, None]
    model, _ = frozen_model("uniqa-tiny", None, 0).load()
    encoder = ImageEncoder(model, 8)
    batch = {"image_id": np.array(ids, dtype=object), "image_uri": np.array(paths, dtype=object),
             "decode_size": np.array([448, None], dtype=object)}
    cached = encode_numpy(encoder, feature_views_batch(batch, DecodeConfig(), 64, 2, "crops10", 0)["views"])
    exact = ExactSource(paths, ids, encoder, 0, 2, row_sizes=manifest_row_sizes(str(tmp_path / "m"), ids))
    assert torch.allclose(exact.test(np.arange(2)), cached[:, 2:], atol=1e-5)
    assert torch.allclose(exact(1, np.arange(2)), cached[:, 1], atol=1e-5)
    assert exact.image(0).shape == (448, 672, 3) and exact.image(1).shape == (70, 50, 3)
