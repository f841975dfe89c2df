"""Scoring without Ray: config checks, input resolution, the in-process Scorer API, output schema."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from zoo import build_zoo, good_images

from uniqa.errors import UniqaError
from uniqa.schema import score_columns, scores_schema
from uniqa.scoring.config import ScoreConfig, parse_head
from uniqa.scoring.inputs import resolve_input, uri_id

# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> dict[str, str]:
    """A uniqa-tiny checkpoint folder (seeded weights) and a trained quality head built on it."""
    import torch

    from uniqa.adapters import QUALITY, LevelHead, save_head
    from uniqa.models import create_model, save_checkpoint

    root = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    model, _, _ = create_model("uniqa-tiny")
    save_checkpoint(model, "uniqa-tiny", str(root / "ckpt"))
    model, _, tokenizer = create_model("uniqa-tiny", str(root / "ckpt"))
    head = LevelHead.from_model(model, tokenizer, QUALITY, adapter=True)
    with torch.no_grad():
        head.down.weight.normal_(0, 0.3)
        head.up.weight.normal_(0, 0.3)
        head.levels.copy_(torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]))
    save_head(head, str(root / "head"))
    return {"ckpt": str(root / "ckpt"), "head": str(root / "head")}


@pytest.fixture(scope="session")
def mixed_images(tmp_path_factory) -> dict:
    """The bad-input zoo plus 12 good JPEGs of a few sizes; ``uris`` in a fixed order."""
    root = tmp_path_factory.mktemp("mixed")
    cases = build_zoo(root / "zoo")
    good = good_images(root / "good", 6, size=(96, 80)) + good_images(root / "good2", 6, size=(40, 50), seed=1)
    return {"cases": cases, "good": good, "uris": [c.uri for c in cases] + good, "root": str(root)}


def tiny_config(tiny_model, heads: tuple[str, ...] | None = None, **kw) -> ScoreConfig:
    heads = heads or ("quality", "aesthetics", f"trained={tiny_model['head']}")
    return ScoreConfig(model=tiny_model["ckpt"], heads=heads, **kw)


def check_zoo_rows(rows_by_uri: dict[str, dict], mixed: dict) -> None:
    """Every zoo case and good image has its row; bad ones carry their error and null scores."""
    assert len(rows_by_uri) == len(mixed["uris"])
    for case in mixed["cases"]:
        row = rows_by_uri[case.uri]
        if case.ok:
            assert row["error"] is None, (case.name, row["error"])
            assert 0.2 <= row["quality"] <= 1.0 and 0.2 <= row["aesthetics"] <= 1.0, case.name
        else:
            assert row["error"] and case.match in row["error"], (case.name, row["error"])
            assert row["quality"] is None and row["aesthetics"] is None and row["trained"] is None, case.name
    for uri in mixed["good"]:
        assert rows_by_uri[uri]["error"] is None and 0.0 <= rows_by_uri[uri]["trained"] <= 1.0


# ------------------------------------------------------------------------------------- config


def test_head_specs():
    assert parse_head("quality").source == "quality" and not parse_head("quality").trained
    spec = parse_head("q=quality-ensemble")
    assert (spec.name, spec.source, spec.trained) == ("q", "quality-ensemble", False)
    spec = parse_head("aes=runs/adapt/aes/head.safetensors")
    assert spec.trained and spec.folder == "runs/adapt/aes"
    assert parse_head("aes=head.safetensors").folder == "."
    assert parse_head("q=s3://b/heads/q").trained and parse_head("q=./quality").trained
    with pytest.raises(UniqaError, match="name the column"):
        parse_head("runs/head.safetensors")
    with pytest.raises(UniqaError, match="NAME=PROMPT_SET"):
        parse_head("bad name=quality")


def test_a_folder_in_the_cwd_does_not_make_a_prompt_set_a_trained_head(tmp_path, monkeypatch):
    from uniqa.scoring.config import preflight
    from uniqa.scoring.fingerprint import fingerprint

    monkeypatch.chdir(tmp_path)
    (tmp_path / "quality").mkdir()  # a folder (even one holding a head) named like the prompt set
    (tmp_path / "quality" / "head.json").write_text("{}")
    cfg = preflight(ScoreConfig(model="uniqa-tiny", heads=("quality",)))
    assert [(s.name, s.source, s.trained) for s in cfg.head_specs] == [("quality", "quality", False)]
    assert fingerprint(cfg) == fingerprint(preflight(ScoreConfig(model="uniqa-tiny", heads=("quality",))))
    with pytest.raises(UniqaError, match=r"unknown prompt set 'myhead'.*q=\./myhead"):
        ScoreConfig(model="uniqa-tiny", heads=("q=myhead",))  # a bare word is a prompt set, never a folder


def test_how_crops_are_placed_is_part_of_the_scores_and_features_keys(monkeypatch):
    """A scores or features folder cut with other crop positions is never resumed with these."""
    from uniqa.data import views
    from uniqa.features.config import FeaturesConfig
    from uniqa.features.run import identity
    from uniqa.models.encoder import frozen_model
    from uniqa.scoring.config import preflight
    from uniqa.scoring.fingerprint import fingerprint

    cfg = preflight(ScoreConfig(model="uniqa-tiny", heads=("quality",)))
    frozen = frozen_model("uniqa-tiny")
    before = fingerprint(cfg), identity(FeaturesConfig(model="uniqa-tiny"), frozen)
    monkeypatch.setattr(views, "VIEW_SCHEME", "another-scheme/2")
    assert fingerprint(cfg) != before[0]
    assert identity(FeaturesConfig(model="uniqa-tiny"), frozen) == {**before[1], "view_scheme": "another-scheme/2"}


def test_config_touches_no_storage(monkeypatch):
    from uniqa import storage

    def no_storage(*a, **k):
        raise AssertionError("ScoreConfig touched storage")

    for name in ("exists", "is_dir", "read_bytes", "resolve", "list_files"):
        monkeypatch.setattr(storage, name, no_storage)
    cfg = ScoreConfig(model="runs/pretrain/final", pretrained=None, heads=("quality", "q=/no/head", "a=s3://b/h"))
    assert [s.trained for s in cfg.head_specs] == [False, True, True]
    cfg = ScoreConfig(model="uniqa-tiny", pretrained="/no/such/weights.pt")
    assert cfg.pretrained == "/no/such/weights.pt"


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"heads": ("quality", "sharpness")}, "unknown prompt set 'sharpness'"),
        ({"heads": ("quality", "quality")}, "given twice"),
        ({"heads": ()}, "no heads"),
        ({"views": "crops7"}, r"views must be one of \['crops10', 'five', 'full'\], got 'crops7'"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"num_gpus": -1}, "num_gpus must be a number >= 0"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"precision": "fp16", "num_gpus": 0}, "fp16 needs GPUs, but num_gpus is 0"),
        ({"model": ""}, "no model"),
        ({"rows_per_block": 0}, "rows_per_block must be a positive integer or null, got 0"),
        ({"threads": 1.5}, "threads must be a positive integer or null, got 1.5"),
    ],
)
def test_invalid_config_fails_with_one_line(kw, match):
    with pytest.raises(UniqaError, match=match):
        ScoreConfig(**{"model": "uniqa-tiny", **kw})


def test_score_follows_the_positional_embedding_switch_of_its_trained_heads(tiny_model, tmp_path):
    """`uniqa score --heads quality=OUT/adapters/split_0` runs the tower as the head was trained (head.json); a
    config that says otherwise, or trained heads that disagree, are refused before any work."""
    from uniqa.adapters import QUALITY, LevelHead, save_head
    from uniqa.models import create_model
    from uniqa.scoring.api import Scorer
    from uniqa.scoring.config import preflight
    from uniqa.scoring.fingerprint import fingerprint

    model, _, tokenizer = create_model("uniqa-tiny", tiny_model["ckpt"], pos_embedding=False)
    save_head(LevelHead.from_model(model, tokenizer, QUALITY), str(tmp_path / "off"))
    off = preflight(tiny_config(tiny_model, ("quality", f"q={tmp_path / 'off'}")))
    assert off.pos_embedding is False
    assert preflight(tiny_config(tiny_model)).pos_embedding is True  # no head without it: the tower as is
    on = replace(off, heads=("quality",), pos_embedding=True)
    assert fingerprint(replace(off, heads=("quality",))) != fingerprint(on)  # part of the scores' key
    with pytest.raises(UniqaError, match=r"head 'q' was trained with pos_embedding=false \(its head.json\), but "
                                         "pos_embedding is true"):
        preflight(tiny_config(tiny_model, (f"q={tmp_path / 'off'}",), pos_embedding=True))
    with pytest.raises(UniqaError, match=r"heads \['trained'\] were trained with pos_embedding=true and \['q'\] "
                                         "with false"):
        preflight(tiny_config(tiny_model, (f"q={tmp_path / 'off'}", f"trained={tiny_model['head']}")))
    with pytest.raises(UniqaError, match="pos_embedding must be true, false or null"):
        tiny_config(tiny_model, pos_embedding="no")
    image = np.random.default_rng(0).integers(0, 256, (80, 90, 3), dtype=np.uint8)
    scorer = Scorer(off, device="cpu")
    assert not scorer.multihead.encoder.model.visual.positional_embedding.any()  # the tower runs without it
    with_it = Scorer(on, device="cpu").score([image])[0]
    assert scorer.score([image])[0]["quality"] != pytest.approx(with_it["quality"], abs=1e-6)  # other features


def test_a_manifest_rows_decode_size_is_used_by_score_and_keyed(tmp_path):
    """SPAQ rows are scored from the image resized to 448 on the shorter side (the manifest's decode_size), unless
    the config sets a size for every row; the sizes are part of the scores' key."""
    import io

    from uniqa.data.images import DecodeConfig, load_image
    from uniqa.data.views import image_views
    from uniqa.scoring.batches import views_batch
    from uniqa.scoring.fingerprint import fingerprint

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    batch = {"image_id": np.array(["spaq/a", "b"], dtype=object), "image_uri": np.array([data, data], dtype=object),
             "decode_size": np.array([448, None], dtype=object)}
    out = views_batch(batch, DecodeConfig(), "crops10", 64, seed=0)
    at_448 = load_image(data, DecodeConfig(size=448))
    assert at_448.shape == (448, 627, 3)
    assert np.array_equal(out["views"][0], image_views(at_448, "crops10", 64, 0, "spaq/a"))
    assert np.array_equal(out["views"][1], image_views(load_image(data), "crops10", 64, 0, "b"))
    forced = views_batch(batch, DecodeConfig(size=80), "crops10", 64, seed=0)
    assert np.array_equal(forced["views"][0], image_views(load_image(data, DecodeConfig(size=80)), "crops10", 64, 0,
                                                          "spaq/a"))
    cfg = ScoreConfig(model="uniqa-tiny", heads=("quality",), image_size=64)
    assert fingerprint(cfg) == fingerprint(cfg, [None])  # as stored: the key outputs had before
    assert fingerprint(cfg, [448]) != fingerprint(cfg) and fingerprint(cfg, [448]) != fingerprint(cfg, [448, None])
    forced_cfg = replace(cfg, decode_size=80)
    assert fingerprint(forced_cfg, [448]) == fingerprint(forced_cfg)  # the run's size wins: rows do not matter


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"heads": ("q=/nope/head",)}, r"head 'q': no trained head at /nope/head \(head.json not found\)"),
        ({"pretrained": "/no/such/weights.pt"}, "^no such checkpoint: /no/such/weights.pt$"),
        ({"pretrained": "laion9b"}, r"pretrained 'laion9b' is neither a checkpoint path nor an open_clip tag"),
        ({"model": "runs/nope"}, "no such checkpoint: runs/nope"),
        ({"model": "uniqa-huge"}, "unknown model 'uniqa-huge'"),
        ({"image_size": 224}, "image_size 224 does not fit model uniqa-tiny, which takes 64 px views"),
    ],
)
def test_preflight_fails_with_one_line(kw, match):
    from uniqa.scoring.config import preflight

    cfg = ScoreConfig(**{"model": "uniqa-tiny", **kw})  # fine until storage and the model are looked at
    with pytest.raises(UniqaError, match=match):
        preflight(cfg)


def test_preflight_resolves_a_checkpoint_once(tiny_model):
    from uniqa.scoring.config import preflight

    cfg = preflight(tiny_config(tiny_model))
    assert (cfg.model, cfg.pretrained, cfg.image_size) == ("uniqa-tiny", tiny_model["ckpt"], 64)
    assert preflight(cfg) == cfg  # a resolved config stays as it is
    with pytest.raises(UniqaError, match="is a checkpoint; do not also pass pretrained"):
        preflight(ScoreConfig(model=tiny_model["ckpt"], pretrained=tiny_model["ckpt"]))


@pytest.mark.parametrize(
    "views, size, rows_per_block, rows",
    [
        ("crops10", 64, None, 546),  # 64 MiB / (10 x 64 x 64 x 3 bytes)
        ("crops10", 224, None, 44),  # a ViT-B/16's views: small blocks, the object store is not flooded
        ("crops10", 1024, None, 16),  # at least 16 rows
        ("full", 64, None, 1024),  # at most 1024 rows
        ("crops10", 64, 7, 7),  # given: as given
    ],
)
def test_block_rows_fill_a_byte_budget(views, size, rows_per_block, rows):
    cfg = ScoreConfig(model="uniqa-tiny", views=views, rows_per_block=rows_per_block)
    assert cfg.block_rows(size) == rows


def test_block_rows_give_every_actor_work_on_small_inputs():
    cfg = ScoreConfig(model="uniqa-tiny", num_actors=4)
    assert cfg.block_rows(64, total=1000) == 125  # 8 blocks for 4 actors
    assert cfg.block_rows(64, total=100_000) == 546  # large inputs: the byte budget
    assert cfg.block_rows(64, total=40) == 16  # never below 16 rows


def test_cpu_actor_uses_the_configured_torch_threads_and_checks_nothing_again(tiny_model, monkeypatch):
    import torch

    from uniqa.scoring import api, config
    from uniqa.scoring.score_stage import ScoreStage

    cfg = config.preflight(ScoreConfig(model=tiny_model["ckpt"], threads=1))  # on the driver, once
    monkeypatch.setattr(api, "preflight", lambda c: pytest.fail("an actor pre-flighted its config again"))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        stage = ScoreStage(cfg, checksum="x", use_gpu=False)
        assert torch.get_num_threads() == 1 and stage.scorer.checksum == "x" and stage.scorer.cfg == cfg
        torch.set_num_threads(2)
        ScoreStage(replace(cfg, threads=None), checksum="x", use_gpu=False)  # None: the policy (a driver here: 1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_invalid_run_fails_before_ray(tmp_path, monkeypatch, mixed_images):
    from uniqa.scoring import run

    monkeypatch.setattr(run, "_score_rows", lambda *a, **k: pytest.fail("Ray work started"))
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(mixed_images["good"]))
    with pytest.raises(UniqaError, match="unknown model 'uniqa-huge'"):
        run.run_score(str(listing), str(tmp_path / "out"), ScoreConfig(model="uniqa-huge"))
    with pytest.raises(UniqaError, match="input not found"):
        run.run_score(str(tmp_path / "nope.txt"), str(tmp_path / "out"), ScoreConfig(model="uniqa-tiny"))
    with pytest.raises(UniqaError, match="image_size 224 does not fit model uniqa-tiny"):
        run.run_score(str(listing), str(tmp_path / "out"), ScoreConfig(model="uniqa-tiny", image_size=224))
    from uniqa.scoring.api import Scorer

    with pytest.raises(UniqaError, match="precision fp16 needs a GPU"):
        Scorer(ScoreConfig(model="uniqa-tiny", precision="fp16"), device="cpu")
    (tmp_path / "out").mkdir()  # scores of another model: the run identity pinned by their run refuses this one
    pq.write_table(pa.table({"image_id": ["x"], "model_checksum": ["0" * 32]}), tmp_path / "out" / "part-1.parquet")
    with pytest.raises(UniqaError, match="holds output made with model_checksum='0000"):  # not pinned: its parts
        run.run_score(str(listing), str(tmp_path / "out"), ScoreConfig(model="uniqa-tiny"))
    (tmp_path / "out" / "_run.json").write_text(json.dumps({"model_checksum": "0" * 32}))
    with pytest.raises(UniqaError, match="holds output made with model_checksum='0000"):
        run.run_score(str(listing), str(tmp_path / "out"), ScoreConfig(model="uniqa-tiny"))


def test_cli_flags_override_config_file_and_set(tmp_path):
    from uniqa.scoring.cli import COMMAND
    from uniqa.stagecli import add_arguments, resolve

    (tmp_path / "c.yaml").write_text("model: uniqa-small\nbatch_size: 8\nviews: five\nnum_actors: 3\n")
    p = argparse.ArgumentParser()
    add_arguments(p, COMMAND)
    args = p.parse_args(["--input", "x", "--out", "y", "--config", str(tmp_path / "c.yaml"), "--set", "batch_size=16",
                         "--set", "num_gpus=0.5", "--model", "uniqa-tiny", "--heads", "quality,q2=quality-ensemble",
                         "--actors", "2", "--embeddings"])
    (input_uri,), out, cfg = resolve(COMMAND, args)
    assert (input_uri, out) == ("x", "y")
    assert (cfg.model, cfg.batch_size, cfg.views, cfg.num_actors, cfg.num_gpus) == ("uniqa-tiny", 16, "five", 2, 0.5)
    assert cfg.heads == ("quality", "q2=quality-ensemble") and cfg.embeddings is True
    (tmp_path / "job.yaml").write_text("input: s3://b/manifest\nout: s3://b/scores\nmodel: uniqa-tiny\n")
    (input_uri,), out, cfg = resolve(COMMAND, p.parse_args(["--config", str(tmp_path / "job.yaml")]))
    assert (input_uri, out, cfg.model) == ("s3://b/manifest", "s3://b/scores", "uniqa-tiny")
    with pytest.raises(UniqaError, match="no out: pass --out"):
        resolve(COMMAND, p.parse_args(["--input", "x", "--model", "uniqa-tiny"]))


def test_cluster_config_example_has_valid_keys():
    from uniqa.config import from_dict, read_config_file

    data = read_config_file(os.path.join(os.path.dirname(__file__), "..", "cluster", "score.yaml"))
    assert data.pop("input").startswith("s3://") and data.pop("out").startswith("s3://")
    cfg = from_dict(ScoreConfig, {**data, "model": "uniqa-tiny", "heads": ["quality", "aesthetics"]})
    assert (cfg.num_gpus, cfg.views, cfg.precision) == (0.5, "crops10", "fp16")


# -------------------------------------------------------------------------------------- inputs


def test_inputs_folder_list_and_manifest(tmp_path, mixed_images):
    good = mixed_images["good"]
    folder = resolve_input(os.path.dirname(good[0]))
    assert folder.kind == "images" and folder.rows == 6
    assert folder.table["image_id"].to_pylist() == [uri_id(u) for u in sorted(good[:6])]

    listing = tmp_path / "imgs.txt"
    rel = os.path.relpath(good[1], tmp_path)
    listing.write_text(f"# images\n{good[0]}\n\n{rel}\n{good[0]}\n")
    inp = resolve_input(str(listing))
    assert inp.kind == "list" and inp.rows == 2 and inp.duplicates == 1
    assert inp.table["image_uri"].to_pylist() == [good[0], good[1]]  # relative to the list's folder

    manifest = tmp_path / "manifest"
    manifest.mkdir()
    pq.write_table(pa.table({"image_id": ["a", "b"], "image_uri": good[:2], "mos": [1.0, 2.0]}),
                   manifest / "part-00000.parquet")
    pq.write_table(pa.table({"image_id": ["c"], "image_uri": good[2:3]}), manifest / "part-00001.parquet")
    (manifest / "_summary.json").write_text("{}")
    inp = resolve_input(str(manifest))
    assert inp.kind == "manifest" and inp.rows == 3 and len(inp.files) == 2 and inp.table is None
    assert resolve_input(str(manifest / "part-00001.parquet")).rows == 1


def test_input_errors_name_the_problem(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "path": ["x.jpg"]}), tmp_path / "m.parquet")
    with pytest.raises(UniqaError, match=r"missing column 'image_id'; found columns \['id', 'path'\]"):
        resolve_input(str(tmp_path / "m.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UniqaError, match="no image files"):
        resolve_input(str(tmp_path / "empty"))
    (tmp_path / "notes.csv").write_text("a,b\n")
    with pytest.raises(UniqaError, match="cannot tell what input"):
        resolve_input(str(tmp_path / "notes.csv"))
    (tmp_path / "blank.txt").write_text("# nothing\n\n")
    with pytest.raises(UniqaError, match="has no entries"):
        resolve_input(str(tmp_path / "blank.txt"))


def test_s3_prefix_is_listed(s3_bucket, mixed_images):
    from uniqa import storage

    for i, path in enumerate(mixed_images["good"][:3]):
        storage.write_bytes(f"{s3_bucket}/imgs/sub/{i}.jpg", open(path, "rb").read())
    storage.write_bytes(f"{s3_bucket}/imgs/readme.md", b"not an image")
    inp = resolve_input(f"{s3_bucket}/imgs/")
    assert inp.kind == "images" and inp.table["image_uri"].to_pylist() == [
        f"{s3_bucket}/imgs/sub/{i}.jpg" for i in range(3)
    ]


# -------------------------------------------------------------------------------------- schema


def test_scores_schema_orders_and_types_columns():
    schema = scores_schema(["quality", "aesthetics"], embedding=True)
    assert schema.columns == ["image_id", "image_uri", "quality", "aesthetics", "embedding", "error", "model_checksum"]
    rows = pa.table({"image_id": ["a"], "image_uri": ["u"], "quality": pa.array([0.5], pa.float32()),
                     "aesthetics": [0.7], "error": [None], "model_checksum": ["c"]})
    with pytest.raises(UniqaError, match="missing column 'embedding'"):
        schema.conform(rows)  # a run with embeddings must write them
    table = scores_schema(["quality", "aesthetics"]).conform(rows)
    assert table.schema.field("quality").type == pa.float64() and "embedding" not in table.column_names
    assert score_columns(table.schema) == ["quality", "aesthetics"]
    with pytest.raises(UniqaError, match="head column 'aesthetics' has type string"):
        score_columns(table.set_column(3, "aesthetics", pa.array(["x"])).schema)
    with pytest.raises(UniqaError, match="clashes with a fixed scores column"):
        scores_schema(["error"])


# ----------------------------------------------------------------------------------------- API


@pytest.fixture(scope="module")
def api_rows(tiny_model, mixed_images) -> dict:
    from uniqa.scoring.api import Scorer

    scorer = Scorer(tiny_config(tiny_model, batch_size=5, embeddings=True))
    return {"scorer": scorer, "rows": scorer.score(mixed_images["uris"])}


def test_api_scores_zoo_and_good_images(api_rows, mixed_images):
    rows = api_rows["rows"]
    assert [r["image_uri"] for r in rows] == mixed_images["uris"]
    assert [r["image_id"] for r in rows] == [uri_id(u) for u in mixed_images["uris"]]
    check_zoo_rows({r["image_uri"]: r for r in rows}, mixed_images)
    assert len({r["model_checksum"] for r in rows}) == 1
    ok = [r for r in rows if r["error"] is None]
    emb = np.array([r["embedding"] for r in ok])
    norms = np.linalg.norm(emb, axis=1)  # the mean of unit-length per-view embeddings
    assert emb.shape == (len(ok), 64) and np.all((norms > 0.5) & (norms <= 1 + 1e-5))
    assert all(r["embedding"] is None for r in rows if r["error"])
    assert np.std([r["quality"] for r in ok]) > 1e-4  # the images are told apart


def test_api_same_scores_for_any_batch_size_and_input_kind(api_rows, tiny_model, mixed_images):
    from uniqa.scoring.api import Scorer

    scorer = Scorer(tiny_config(tiny_model, batch_size=1))
    good = mixed_images["good"][:4]
    by_path = scorer.score(good)
    ref = {r["image_uri"]: r for r in api_rows["rows"]}
    for row in by_path:
        for head in ("quality", "aesthetics", "trained"):
            assert row[head] == pytest.approx(ref[row["image_uri"]][head], abs=1e-6)
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in good]
    inputs = [Image.open(good[0]), arrays[1], open(good[2], "rb").read(), arrays[3]]
    ids = [uri_id(p) for p in good]  # crops are seeded per image id: the same ids give the same crops
    from_memory = scorer.score(inputs, ids=ids)
    assert [r["image_id"] for r in from_memory] == ids and all(r["image_uri"] is None for r in from_memory)
    assert [r["quality"] for r in from_memory] == pytest.approx([r["quality"] for r in by_path], abs=1e-6)
    assert [r["image_id"] for r in scorer.score(inputs[:2], ids=list("ab"))] == ["a", "b"]
    with pytest.raises(UniqaError, match="cannot score an array of shape"):
        scorer.score([np.zeros((4, 4), np.float32)])


def test_api_views_protocol_and_trained_head_matter(api_rows, tiny_model, mixed_images):
    from uniqa.scoring.api import Scorer

    good = mixed_images["good"][:3]
    full = Scorer(tiny_config(tiny_model, views="full")).score(good)
    crops = [r for r in api_rows["rows"] if r["image_uri"] in good]
    assert not np.allclose([r["quality"] for r in full], [r["quality"] for r in crops], atol=1e-5)
    assert full[0]["model_checksum"] != crops[0]["model_checksum"]
    assert not np.allclose([r["trained"] for r in crops], [r["quality"] for r in crops], atol=1e-3)
