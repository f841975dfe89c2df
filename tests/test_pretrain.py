"""Pre-training without Ray: schedule, text sampling, the epoch stream, pre-flight errors, and global negatives
(a 2-worker DDP step over gloo equals one process on the concatenated batch)."""

from __future__ import annotations

import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from uniqa.errors import UniqaError
from uniqa.training.config import PretrainConfig
from uniqa.training.ingest import (
    EPOCH_BITS,
    expand_epochs,
    group_texts,
    make_views,
    pick_text,
    rank_counts,
    read_resume_keys,
    resume_key_for,
    write_resume_keys,
)
from uniqa.training.loop import Plan, build_model, forward_loss, lr_at

LEVELS = ("bad", "poor", "fair", "good", "perfect")


def write_corpus(folder, n_images: int = 24, broken: int = 0, size=(80, 96), seed: int = 0) -> str:
    """Random-pixel PNGs + a corpus table (a quality caption and a level prompt per image) -> corpus folder."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    os.makedirs(f"{folder}/img", exist_ok=True)
    rows = {"image_id": [], "image_uri": [], "text": [], "source": [], "weight": []}

    def add(image_id, uri, text, source):
        for key, value in zip(rows, (image_id, uri, text, source, 0.5)):
            rows[key].append(value)

    for i in range(n_images):
        uri = f"{folder}/img/{i}.png"
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(uri)
        add(f"im{i}", uri, f"a photo number {i}", "quality_caption")
        add(f"im{i}", uri, f"{LEVELS[i % 5]} image", "level_prompt")
    for j in range(broken):
        uri = f"{folder}/img/broken{j}.png"
        if j % 2:
            with open(uri, "wb") as f:
                f.write(b"\x89PNG\r\n\x1a\n not really")
        add(f"broken{j}", uri, "a broken photo", "comment")
    os.makedirs(f"{folder}/corpus", exist_ok=True)
    pq.write_table(pa.table(rows), f"{folder}/corpus/part-0.parquet")
    return f"{folder}/corpus"


def test_lr_warms_up_then_follows_a_cosine():
    cfg = PretrainConfig(lr=1e-3, min_lr=1e-5, warmup_steps=10)
    assert lr_at(0, cfg, 110) == pytest.approx(1e-4)
    assert lr_at(9, cfg, 110) == pytest.approx(1e-3)
    assert lr_at(60, cfg, 110) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5))
    assert lr_at(110, cfg, 110) == pytest.approx(1e-5)
    assert lr_at(10, cfg, 110) > lr_at(50, cfg, 110) > lr_at(100, cfg, 110)


def test_constant_schedule_keeps_lr_after_the_warm_up():
    cfg = PretrainConfig(lr=1e-5, schedule="constant", warmup_steps=0)
    assert [lr_at(s, cfg, 100) for s in (0, 50, 99, 100)] == [1e-5] * 4
    warm = PretrainConfig(lr=1e-3, schedule="constant", warmup_steps=10)
    assert lr_at(4, warm, 100) == pytest.approx(5e-4) and lr_at(10, warm, 100) == lr_at(90, warm, 100) == 1e-3


def test_uniform_text_choice_ignores_source_weights_but_not_switched_off_sources():
    texts, sources, weights = ["q", "a", "c1", "c2", "bad image"], ["quality_caption", "aesthetics_caption",
                                                                     "comment", "comment", "level_prompt"], [1.0] * 5
    rng = np.random.default_rng(0)
    skewed = {"quality_caption": 5.0, "aesthetics_caption": 1.0, "comment": 1.0, "level_prompt": 0.0}
    picks = [pick_text(texts, sources, weights, skewed, rng, "uniform") for _ in range(4000)]
    for text in ("q", "a", "c1", "c2"):  # the official choice: each of the image's texts alike
        assert picks.count(text) / 4000 == pytest.approx(0.25, abs=0.03), text
    assert "bad image" not in picks  # a source with weight 0 stays off
    by_source = [pick_text(texts, sources, weights, skewed, rng) for _ in range(4000)]
    assert by_source.count("q") / 4000 == pytest.approx(5 / 7, abs=0.03)


@pytest.mark.parametrize("shape", [(150, 97), (97, 150), (64, 64), (200, 200), (63, 90)])
def test_clip_preprocess_view_is_torchvisions_clip_transform(shape):
    from PIL import Image
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Resize

    from uniqa.training.ingest import train_view

    image = np.random.default_rng(3).integers(0, 256, (*shape, 3), dtype=np.uint8)
    clip = Compose([Resize(64, interpolation=InterpolationMode.BICUBIC), CenterCrop(64)])  # CLIP's _transform
    want = np.asarray(clip(Image.fromarray(image)))
    views = [train_view(image, 64, "clip_preprocess", False, seed) for seed in range(4)]
    assert all(np.array_equal(v, want) for v in views)  # no randomness without flip
    flipped = [train_view(image, 64, "clip_preprocess", True, seed) for seed in range(8)]
    assert {np.array_equal(v, want[:, ::-1]) or np.array_equal(v, want) for v in flipped} == {True}


def test_pick_text_follows_source_weights():
    texts, sources, weights = ["q", "a", "c1", "c2", "bad image"], ["quality_caption", "aesthetics_caption",
                                                                     "comment", "comment", "level_prompt"], [1.0] * 5
    rng = np.random.default_rng(0)
    only_level = {"quality_caption": 0.0, "aesthetics_caption": 0.0, "comment": 0.0, "level_prompt": 1.0}
    assert {pick_text(texts, sources, weights, only_level, rng) for _ in range(20)} == {"bad image"}
    equal = {"quality_caption": 1.0, "aesthetics_caption": 1.0, "comment": 1.0, "level_prompt": 1.0}
    picks = [pick_text(texts, sources, weights, equal, rng) for _ in range(4000)]
    # four sources present, equal weights: each source 1/4; the two comments share theirs
    assert picks.count("q") / 4000 == pytest.approx(0.25, abs=0.03)
    assert picks.count("c1") / 4000 == pytest.approx(0.125, abs=0.03)
    assert pick_text(["x"], ["comment"], [1.0], only_level, rng) is None


def _index(n: int = 6) -> pa.Table:
    rows = pa.table({"image_id": [f"im{i}" for i in range(n) for _ in range(2)],
                     "image_uri": [f"/x/{i}.png" for i in range(n) for _ in range(2)],
                     "text": [t for i in range(n) for t in (f"caption {i}", f"{LEVELS[i % 5]} image")],
                     "source": ["quality_caption", "level_prompt"] * n, "weight": [0.5] * (2 * n)})
    return pa.concat_tables([group_texts(rows.slice(2 * i, 2)) for i in range(n)])


def test_epoch_stream_is_seeded_and_resumes_after_a_key():
    index = _index()
    weights = PretrainConfig().sources.as_dict()
    full = expand_epochs(index, seed=3, epochs=3, source_weights=weights)
    assert len(full) == 18 and full.equals(expand_epochs(index, seed=3, epochs=3, source_weights=weights))
    epochs = np.asarray(full["order"]) >> EPOCH_BITS
    assert sorted(np.bincount(epochs)) == [6, 6, 6]
    other = expand_epochs(index, seed=4, epochs=3, source_weights=weights)
    assert not np.array_equal(np.asarray(full["order"]), np.asarray(other["order"]))
    ordered = np.sort(np.asarray(full["order"]))
    key = int(ordered[7])
    rest = expand_epochs(index, seed=3, epochs=3, source_weights=weights, resume_key=key)
    assert np.array_equal(np.sort(np.asarray(rest["order"])), ordered[8:])
    # a row of the resumed stream has the same text and view seed as in the full stream
    by_order = {o: (t, v) for o, t, v in zip(*(full[c].to_pylist() for c in ("order", "text", "view_seed")))}
    assert all(by_order[o] == (t, v) for o, t, v in zip(*(rest[c].to_pylist() for c in ("order", "text",
                                                                                            "view_seed"))))


def test_rank_streams_split_the_epoch_stream_by_a_seeded_hash():
    index = _index(9)
    weights = PretrainConfig().sources.as_dict()
    full = expand_epochs(index, seed=3, epochs=4, source_weights=weights)
    ranks = [expand_epochs(index, seed=3, epochs=4, source_weights=weights, rank=r, world_size=2) for r in (0, 1)]
    # the two ranks' rows are the single stream's rows (same text and view seed), each row on one rank only
    assert pa.concat_tables(ranks).sort_by("order").equals(full.sort_by("order"))
    assert len(ranks[0]) != len(ranks[1])  # 36 rows, not split evenly: the run must add epochs for the short one
    counts = rank_counts(index, seed=3, first_epoch=1, epochs=4, world_size=2, source_weights=weights)
    assert counts.column_names == ["epoch", "rank", "rows"] and len(counts) == 6
    for epoch, rank, rows in zip(*(counts[c].to_pylist() for c in counts.column_names)):
        assert rows == int(np.sum((np.asarray(ranks[rank]["order"]) >> EPOCH_BITS) == epoch))
    # an image without a text of a weighted source gives no row and is not counted
    no_level = {**weights, "quality_caption": 0.0, "level_prompt": 0.0}
    assert rank_counts(index, seed=3, first_epoch=0, epochs=2, world_size=2, source_weights=no_level)[
        "rows"].to_pylist() == [0, 0, 0, 0]
    # each rank resumes after its own key
    key = int(np.sort(np.asarray(ranks[1]["order"]))[5])
    rest = expand_epochs(index, seed=3, epochs=4, source_weights=weights, rank=1, world_size=2, resume_key=key)
    assert np.array_equal(np.sort(np.asarray(rest["order"])), np.sort(np.asarray(ranks[1]["order"]))[6:])


def test_resume_keys_are_kept_per_rank(tmp_path):
    run = str(tmp_path)
    assert read_resume_keys(run) == [] and resume_key_for([], 1, 2) == -1
    write_resume_keys(run, [7, 3])
    assert read_resume_keys(run) == [7, 3]
    assert [resume_key_for([7, 3], r, 2) for r in (0, 1)] == [7, 3]
    assert resume_key_for([7, 3], 0, 1) == 3  # another world size: after the smallest key (approximate)
    (tmp_path / "_resume.json").write_text('{"key": 5}')  # written before per-rank keys
    assert read_resume_keys(run) == [5]


def test_make_views_crops_unresized_images_and_tokenises(tmp_path):
    corpus = write_corpus(tmp_path, n_images=3, broken=1)
    table = pq.read_table(corpus)
    batch = {"image_uri": np.array(table["image_uri"].to_pylist()[::2] + [f"{tmp_path}/img/missing.png"],
                                   dtype=object),
             "text": np.array(["bad image", "good image", "poor image", "x"], dtype=object),
             "order": np.arange(4), "view_seed": np.arange(4) + 10}
    out = make_views(batch, model="uniqa-tiny", size=64, view="crop", flip=True, max_pixels=10**8)
    assert out["image"].shape == (3, 64, 64, 3) and out["image"].dtype == np.uint8
    assert out["tokens"].shape == (3, 32) and list(out["order"]) == [0, 1, 2]
    again = make_views(batch, model="uniqa-tiny", size=64, view="crop", flip=True, max_pixels=10**8)
    assert np.array_equal(out["image"], again["image"])
    resized = make_views(batch, model="uniqa-tiny", size=64, view="resize_crop", flip=False, max_pixels=10**8)
    assert not np.array_equal(out["image"], resized["image"])


def test_decoded_images_are_cached_per_process_within_a_budget(tmp_path, monkeypatch):
    import uniqa.data.images
    from uniqa.training.ingest import DecodedCache

    corpus = write_corpus(tmp_path, n_images=3, broken=0)
    uris = sorted(set(pq.read_table(corpus)["image_uri"].to_pylist()))
    decoded = []
    real = uniqa.data.images.load_image
    monkeypatch.setattr(uniqa.data.images, "load_image", lambda uri, cfg: decoded.append(uri) or real(uri, cfg))
    cache = DecodedCache()
    first = cache.get(uris[0], 10**8, budget_mb=64)
    assert cache.get(uris[0], 10**8, budget_mb=64) is first and decoded == uris[:1]  # a hit decodes nothing
    assert not first.flags.writeable  # a view can never change the cached pixels
    budget_mb = 1.5 * first.nbytes / 2**20  # room for one image: the least recently used one goes
    cache.get(uris[1], 10**8, budget_mb=budget_mb)
    assert list(k[0] for k in cache.images) == [uris[1]] and cache.bytes == first.nbytes
    cache.get(uris[0], 10**8, budget_mb=budget_mb)
    assert decoded == [uris[0], uris[1], uris[0]]
    # the same rows through make_views, cached or not, give the same views
    batch = {"image_uri": np.array(uris, dtype=object), "text": np.array(["bad image"] * 3, dtype=object),
             "order": np.arange(3), "view_seed": np.arange(3)}
    plain = make_views(batch, model="uniqa-tiny", size=64, view="crop", flip=True, max_pixels=10**8)
    cached = make_views(batch, model="uniqa-tiny", size=64, view="crop", flip=True, max_pixels=10**8, cache_mb=64)
    again = make_views(batch, model="uniqa-tiny", size=64, view="crop", flip=True, max_pixels=10**8, cache_mb=64)
    assert np.array_equal(plain["image"], cached["image"]) and np.array_equal(plain["image"], again["image"])


@pytest.mark.parametrize("override, message", [
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"batch_size": 10, "num_workers": 3}, "divisible by num_workers"),
    ({"view": "zoom"}, "view must be one of"),
    ({"text_choice": "random"}, "text_choice must be one of"),
    ({"optimizer": "sgd"}, "optimizer must be one of"),
    ({"schedule": "linear"}, "schedule must be one of"),
    ({"precision": "bf16"}, "bf16 is for GPUs"),
    ({"lock_image": True, "lock_text": True}, "nothing would be trained"),
    ({"beta2": 1.0}, "beta2 must be in"),
])
def test_config_errors(override, message):
    with pytest.raises(UniqaError, match=message):
        PretrainConfig(**override)


def _cli(capsys, *argv) -> tuple[int, str]:
    from uniqa.cli import main

    code = main(["pretrain", *argv])
    return code, capsys.readouterr().err.strip()


def test_bad_corpus_fails_before_any_ray_work(tmp_path, capsys):
    import ray

    corpus = write_corpus(tmp_path / "ok", n_images=4)
    empty = tmp_path / "empty"
    empty.mkdir()
    pq.write_table(pq.read_table(corpus).slice(0, 0), empty / "part-0.parquet")
    no_text = tmp_path / "no_text"
    no_text.mkdir()
    pq.write_table(pq.read_table(corpus).drop_columns(["text"]), no_text / "part-0.parquet")
    out = str(tmp_path / "run")
    ray_before = ray.is_initialized()  # (another test may have started the session's Ray)
    cases = [
        ((str(empty),), "has no rows"),
        ((str(no_text),), "missing column 'text'"),
        ((corpus, "--batch-size", "64"), "batch_size 64 is larger than the corpus (8 rows"),
        ((corpus, "--batch-size", "4", "--model", "no-such-model"), "unknown model 'no-such-model'"),
        ((str(tmp_path / "nowhere"),), "no such file or directory"),
    ]
    for args, message in cases:
        code, err = _cli(capsys, "--corpus", *args, "--out", out)
        assert code == 2 and err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err
    assert ray.is_initialized() == ray_before and not os.path.exists(out)


# ------------------------------------------------------------------------------ global negatives (gloo)

def _step_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    images = torch.randint(0, 256, (8, 64, 64, 3), dtype=torch.uint8, generator=g)
    tokens = torch.randint(1, 400, (8, 32), generator=g)
    return images, tokens


def _plan() -> Plan:
    return Plan(run="unused", model_name="uniqa-tiny", pretrained=None, images=8, total_steps=1)


def _ddp_rank(rank: int, world_size: int, folder: str) -> None:
    """One rank of a DDP step: the model built as the loop builds it, half of the batch, gathered negatives."""
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    model = build_model(PretrainConfig(seed=7), _plan(), "cpu")
    ddp = DistributedDataParallel(model)
    images, tokens = _step_inputs()
    rows = slice(rank * 4, rank * 4 + 4)
    loss, _ = forward_loss(ddp, images[rows], tokens[rows], rank, world_size)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    torch.save({"loss": loss.detach(), "grads": grads}, f"{folder}/rank{rank}.pt")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_worker_step_equals_one_process_on_the_whole_batch(tmp_path):
    from gloo_ranks import run_two_ranks

    run_two_ranks(_ddp_rank, str(tmp_path), timeout_s=120)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    model = build_model(PretrainConfig(seed=7), _plan(), "cpu")
    images, tokens = _step_inputs()
    loss, _ = forward_loss(model, images, tokens)
    loss.backward()
    assert math.isclose(float((ranks[0]["loss"] + ranks[1]["loss"]) / 2), float(loss), abs_tol=1e-5)
    assert abs(float(ranks[0]["loss"]) - float(loss)) > 1e-4  # each rank alone sees a different loss
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(grads) == set(ranks[0]["grads"]) and len(grads) > 10
    for name, grad in grads.items():
        for r in range(2):  # DDP averaged the ranks' gradients: both equal the full-batch gradient
            assert torch.allclose(ranks[r]["grads"][name], grad, atol=1e-5), name


def _random_batches(n: int, rows: int):
    g = torch.Generator().manual_seed(1)
    for i in range(n):
        yield {"image": torch.randint(0, 256, (rows, 64, 64, 3), dtype=torch.uint8, generator=g),
               "tokens": torch.randint(1, 400, (rows, 32), generator=g), "order": torch.arange(rows) + i * rows}


def test_plain_loop_accumulates_locks_a_tower_checkpoints_and_exports(tmp_path):
    from safetensors.torch import load_file

    from uniqa.models import create_model, read_checkpoint
    from uniqa.training.loop import Worker, train

    cfg = PretrainConfig(model="uniqa-tiny", batch_size=8, accumulation=2, steps=3, warmup_steps=1,
                         checkpoint_every=2, lock_text=True)
    plan = Plan(run=str(tmp_path), model_name="uniqa-tiny", pretrained=None, images=12, total_steps=3)
    reports = []
    metrics = train(cfg, plan, Worker(report=lambda m, folder: reports.append((m["step"], load_file(
        f"{folder}/model.safetensors")["logit_scale"] if folder else None))), lambda: _random_batches(6, 4))
    assert metrics["step"] == 3 and [step for step, _ in reports] == [2, 3]
    assert metrics["epoch"] == pytest.approx(3 * 8 / 12)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        start, _, _ = create_model("uniqa-tiny")  # the same seeded init as the loop's
    final = read_checkpoint(str(tmp_path / "final")).state_dict
    openai = read_checkpoint(str(tmp_path / "final" / "openai.pt")).state_dict
    assert torch.equal(final["visual.proj"], openai["visual.proj"])
    assert not torch.equal(final["visual.proj"], start.state_dict()["visual.proj"])  # the image tower trained
    assert torch.equal(final["text_projection"], start.state_dict()["text_projection"])  # the text tower is locked
    with pytest.raises(RuntimeError, match="data stream ended at step 1"):  # 2 micro-batches per step, 3 given
        train(cfg, Plan(str(tmp_path / "short"), "uniqa-tiny", None, 12, 3), Worker(), lambda: _random_batches(3, 4))


def test_official_preset_runs_with_adam_l2_a_constant_lr_and_no_clipping(tmp_path):
    """cluster/pretrain-official.yaml's optimiser, schedule and clipping on a 2-step plain loop (uniqa-tiny): the
    checkpoint's optimizer state is torch's Adam with weight_decay applied in the gradient (coupled L2), on every
    parameter, at the constant lr; the view and text choice are the preset's (checked above)."""
    from pathlib import Path

    from uniqa.config import from_dict, read_config_file
    from uniqa.training.loop import STATE, Worker, make_optimizer, train

    preset = read_config_file(str(Path(__file__).resolve().parents[1] / "cluster" / "pretrain-official.yaml"))
    preset = {k: v for k, v in preset.items() if k not in ("corpus", "out")}
    official = from_dict(PretrainConfig, preset)
    assert (official.view, official.flip, official.text_choice) == ("clip_preprocess", False, "uniform")
    assert (official.optimizer, official.schedule, official.grad_clip, official.warmup_steps) == (
        "adam_l2", "constant", None, 0)
    assert (official.lr, official.weight_decay, official.batch_size, official.epochs) == (1e-5, 0.2, 196, 50)
    small = {k: getattr(official, k) for k in ("optimizer", "schedule", "grad_clip", "warmup_steps", "lr",
                                               "weight_decay", "beta1", "beta2", "eps")}
    cfg = PretrainConfig(model="uniqa-tiny", batch_size=4, steps=2, checkpoint_every=1, **small)
    plan = Plan(run=str(tmp_path), model_name="uniqa-tiny", pretrained=None, images=8, total_steps=2)
    states = []  # the checkpoint folder may be temporary: read it while it is reported

    def report(metrics, folder):
        if folder:
            states.append(torch.load(os.path.join(folder, STATE), map_location="cpu", weights_only=True))

    train(cfg, plan, Worker(report=report), lambda: _random_batches(2, 4))
    state = states[-1]["optimizer"]
    (group,) = state["param_groups"]  # one group: L2 on every parameter, as train.py's optim.Adam(model.parameters())
    assert group["weight_decay"] == 0.2 and group["lr"] == 1e-5 and group["betas"] == (0.9, 0.98)
    assert group.get("decoupled_weight_decay", False) is False  # Adam's L2, not AdamW's decoupled decay
    model = build_model(cfg, plan, "cpu")
    assert type(make_optimizer(model, cfg)) is torch.optim.Adam
    assert len(group["params"]) == sum(1 for p in model.parameters() if p.requires_grad)
    adamw = make_optimizer(model, PretrainConfig(model="uniqa-tiny"))
    assert type(adamw) is torch.optim.AdamW and [g["weight_decay"] for g in adamw.param_groups] == [0.1, 0.0]
