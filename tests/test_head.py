"""The UniQA level head (METHOD §3): parity with the equations, parameter count, zero-shot, save/load,
and the multi-head scorer (agreement with open_clip's preprocessing, batch-size/order determinism)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from uniqa.adapters import (
    QUALITY,
    QUALITY_ENSEMBLE,
    LevelHead,
    PromptSet,
    get_prompt_set,
    load_head,
    save_head,
    trainable_parameters,
)
from uniqa.data.views import make_views
from uniqa.errors import UniqaError
from uniqa.models import create_model
from uniqa.models.factory import ModelInfo
from uniqa.scoring.multihead import MultiHeadScorer


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("uniqa-tiny")


def randomised(head: LevelHead, seed: int) -> LevelHead:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return head


def reference_score(f: torch.Tensor, w1, w2, prompts: torch.Tensor, log_scale: float, s: list[float]) -> float:
    """METHOD §3 written out for one image: adapter, cosine, scaled softmax per group, expectation, mean."""
    if w1 is not None:
        f = f + torch.relu(w2 @ torch.relu(w1 @ f))
    group_scores = []
    for group in prompts:
        logits = [math.exp(log_scale) * float(torch.dot(f, t) / (f.norm() * t.norm())) for t in group]
        top = max(logits)
        weights = [math.exp(v - top) for v in logits]
        group_scores.append(sum(w * sk for w, sk in zip(weights, s)) / sum(weights))
    return sum(group_scores) / len(group_scores)


def test_reproduction_prompt_sets_are_registered():
    """The official head's wording for IQA and IAA alike ("{level} image", as ``image``) and its "{level}
    content" variant; usable wherever a prompt set is named (adapters, zero-shot scoring heads)."""
    from uniqa.adapters.config import AdaptConfig
    from uniqa.scoring.config import ScoreConfig

    assert get_prompt_set("image").prompts == ["bad image", "poor image", "fair image", "good image", "perfect image"]
    assert get_prompt_set("content").prompts == ["bad content", "poor content", "fair content", "good content",
                                                 "perfect content"]
    assert AdaptConfig(model="uniqa-tiny", head="aesthetics", prompt_set="image").trained_prompt_set == "image"
    assert ScoreConfig(model="uniqa-tiny", heads=("aesthetics=image",)).head_specs[0].source == "image"


@pytest.mark.parametrize("prompt_set", [QUALITY, QUALITY_ENSEMBLE], ids=["single", "ensemble"])
@pytest.mark.parametrize("adapter", [True, False], ids=["adapter", "zero-shot"])
def test_head_matches_the_equations(prompt_set, adapter):
    g = torch.Generator().manual_seed(1)
    prompts = torch.randn(len(prompt_set.groups), 5, 32, generator=g)  # un-normalised on purpose
    head = randomised(LevelHead(prompts, 2.3, prompt_set, adapter=adapter, train_levels=True), 2)
    features = torch.randn(7, 32, generator=g) * 3
    w1 = head.down.weight.detach() if adapter else None
    w2 = head.up.weight.detach() if adapter else None
    s = head.levels.detach().tolist()
    expected = torch.tensor([reference_score(f, w1, w2, prompts, 2.3, s) for f in features])
    assert torch.allclose(head(features), expected, atol=1e-5)
    if adapter:
        assert head.down.weight.shape == (16, 32) and head.up.weight.shape == (32, 16)
        assert head.down.bias is None and head.up.bias is None


def test_from_model_caches_frozen_prompts_and_logit_scale(tiny):
    model, _, tokenizer = tiny
    head = LevelHead.from_model(model, tokenizer, QUALITY_ENSEMBLE)
    with torch.no_grad():
        text = model.encode_text(tokenizer(QUALITY_ENSEMBLE.prompts))
    assert torch.allclose(head.prompt_embeddings.reshape(20, -1), text / text.norm(dim=-1, keepdim=True), atol=1e-6)
    assert head.logit_scale.item() == pytest.approx(model.logit_scale.item())
    assert head.logit_scale.data_ptr() != model.logit_scale.data_ptr()  # a frozen copy, not the live parameter
    assert head.levels.tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    trained = {n for n, p in head.named_parameters() if p.requires_grad}
    assert trained == {"down.weight", "up.weight", "levels"}  # prompts and logit scale are buffers
    assert trainable_parameters(head) == 2 * 64 * 32 + 5
    assert head.model_name == "uniqa-tiny"


def test_trainable_parameters_of_vit_b16_are_262149():
    model, _, tokenizer = create_model("ViT-B-16-quickgelu")
    head = LevelHead.from_model(model, tokenizer, QUALITY)
    assert trainable_parameters(head) == 262_149
    assert (head.embed_dim, head.hidden) == (512, 256)
    # same model, other prompt sets (built from cached-size embeddings: encoding 20 prompts adds nothing here)
    ensemble = LevelHead(torch.zeros(4, 5, 512), model.logit_scale, QUALITY_ENSEMBLE)
    assert trainable_parameters(ensemble) == 262_149
    assert trainable_parameters(LevelHead(head.prompt_embeddings, model.logit_scale, QUALITY, adapter=False)) == 0


def test_zero_shot_ensemble_is_the_mean_of_its_groups(tiny):
    model, _, tokenizer = tiny
    features = model.encode_image(torch.randn(5, 3, 64, 64)).detach()
    ensemble = LevelHead.from_model(model, tokenizer, QUALITY_ENSEMBLE, adapter=False)
    singles = [
        LevelHead.from_model(model, tokenizer, PromptSet(f"g{i}", (group,)), adapter=False)
        for i, group in enumerate(QUALITY_ENSEMBLE.groups)
    ]
    per_group = torch.stack([h(features) for h in singles])
    assert torch.allclose(ensemble(features), per_group.mean(0), atol=1e-6)
    single = LevelHead.from_model(model, tokenizer, "quality", adapter=False)
    assert torch.equal(single(features), singles[0](features))
    assert not torch.allclose(single(features), ensemble(features))
    assert ((per_group >= 0.2) & (per_group <= 1.0)).all()
    assert not single.levels.requires_grad and trainable_parameters(single) == 0


def test_adapter_trains_towards_targets(tiny):
    model, _, tokenizer = tiny
    head = LevelHead.from_model(model, tokenizer, QUALITY)
    features = model.encode_image(torch.randn(16, 3, 64, 64)).detach()
    target = torch.linspace(0.1, 0.9, 16)
    opt = torch.optim.Adam([p for p in head.parameters() if p.requires_grad], lr=2e-2)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.mse_loss(head(features), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.grad is None for p in model.parameters())  # CLIP stays frozen


def test_save_and_load_head_round_trip(tiny, tmp_path):
    model, _, tokenizer = tiny
    head = randomised(LevelHead.from_model(model, tokenizer, get_prompt_set("aesthetics-ensemble")), 5)
    head.model_checksum = "abc123"
    save_head(head, str(tmp_path / "head"))
    loaded = load_head(str(tmp_path / "head"))
    features = torch.randn(4, 64)
    assert torch.equal(loaded(features), head(features))
    assert loaded.config() == head.config()
    assert loaded.prompt_set == head.prompt_set and loaded.model_checksum == "abc123"
    zero_shot = LevelHead.from_model(model, tokenizer, QUALITY, adapter=False)
    save_head(zero_shot, str(tmp_path / "zs"))
    assert load_head(str(tmp_path / "zs")).config() == zero_shot.config()


def test_bad_head_folders_fail_clearly(tiny, tmp_path):
    model, _, tokenizer = tiny
    with pytest.raises(UniqaError, match="head.json not found"):
        load_head(str(tmp_path / "missing"))
    save_head(LevelHead.from_model(model, tokenizer, QUALITY), str(tmp_path / "h"))
    (tmp_path / "h" / "head.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(UniqaError, match="cannot read head weights"):
        load_head(str(tmp_path / "h"))
    save_head(LevelHead.from_model(model, tokenizer, QUALITY, adapter=False), str(tmp_path / "z"))
    (tmp_path / "h" / "head.safetensors").write_bytes((tmp_path / "z" / "head.safetensors").read_bytes())
    with pytest.raises(UniqaError, match="missing keys"):
        load_head(str(tmp_path / "h"))


def photo_views(n: int, protocol: str = "five") -> torch.Tensor:
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, (80 + 5 * i, 96, 3), dtype=np.uint8) for i in range(n)]
    return torch.from_numpy(np.stack([make_views(im, protocol, 64, seed=0) for im in images]))


def test_scorer_agrees_with_open_clip_preprocessing(tiny):
    model, preprocess, tokenizer = tiny
    heads = {"quality": randomised(LevelHead.from_model(model, tokenizer, QUALITY), 3)}
    heads["aesthetics"] = LevelHead.from_model(model, tokenizer, "aesthetics", adapter=False)
    views = photo_views(3)
    out = MultiHeadScorer(model, heads, chunk=4)(views, return_embeddings=True)
    assert set(out) == {"quality", "aesthetics", "embedding"}
    pixels = torch.stack([preprocess(Image.fromarray(v.numpy())) for v in views.reshape(-1, 64, 64, 3)])
    with torch.no_grad():
        features = model.encode_image(pixels)
        for name, head in heads.items():
            assert torch.allclose(out[name], head(features).reshape(3, 5).mean(1), atol=1e-5)
    normed = features / features.norm(dim=-1, keepdim=True)
    assert torch.allclose(out["embedding"], normed.reshape(3, 5, -1).mean(1), atol=1e-5)


def test_scores_are_identical_whatever_the_batch_size_and_order(tiny):
    model, _, tokenizer = tiny
    scorer = MultiHeadScorer(model, {"q": LevelHead.from_model(model, tokenizer, QUALITY_ENSEMBLE)}, chunk=16)
    views = photo_views(7, "crops10")
    whole = scorer(views, return_embeddings=True)
    for batch in (1, 3):
        parts = [scorer(views[i : i + batch], return_embeddings=True) for i in range(0, 7, batch)]
        for key in ("q", "embedding"):
            assert torch.equal(torch.cat([p[key] for p in parts]), whole[key])
    order = torch.tensor([4, 0, 6, 2, 1, 5, 3])
    shuffled = scorer(views[order], return_embeddings=True)
    assert torch.equal(shuffled["q"], whole["q"][order])
    assert torch.equal(shuffled["embedding"], whole["embedding"][order])


def test_scorer_rejects_mismatches(tiny):
    model, _, tokenizer = tiny
    head = LevelHead.from_model(model, tokenizer, QUALITY)
    scorer = MultiHeadScorer(model, {"q": head})
    with pytest.raises(UniqaError, match="model takes"):
        scorer(torch.zeros(1, 1, 32, 32, 3, dtype=torch.uint8))
    with pytest.raises(UniqaError, match="uint8"):
        scorer(torch.zeros(1, 1, 64, 64, 3))
    with pytest.raises(UniqaError, match="reserved"):
        MultiHeadScorer(model, {"embedding": head})
    with pytest.raises(UniqaError, match="128-d"):
        MultiHeadScorer(model, {"q": LevelHead(torch.zeros(1, 5, 128), 1.0, QUALITY)})
    other = LevelHead.from_model(model, tokenizer, QUALITY)
    other.model_checksum = "0" * 64
    model.uniqa_info = ModelInfo("uniqa-tiny", "x.pt", "1" * 64)
    try:
        with pytest.raises(UniqaError, match="model weights"):
            MultiHeadScorer(model, {"q": other})
    finally:
        model.uniqa_info = ModelInfo("uniqa-tiny", None, None)


def test_a_head_records_the_positional_embedding_switch_of_its_features(tmp_path):
    """A head made on a tower without its positional embedding says so in head.json (what `uniqa score` follows);
    a head written before the key existed reads as made with it; a scorer refuses a head made the other way."""
    import json

    torch.manual_seed(0)
    off, _, tokenizer = create_model("uniqa-tiny", pos_embedding=False)
    head = LevelHead.from_model(off, tokenizer, QUALITY)
    assert head.pos_embedding is False and head.config()["pos_embedding"] is False
    save_head(head, str(tmp_path / "off"))
    assert load_head(str(tmp_path / "off")).pos_embedding is False
    MultiHeadScorer(off, {"q": load_head(str(tmp_path / "off"))})  # the same switch: fine
    config = json.loads((tmp_path / "off" / "head.json").read_text())
    del config["pos_embedding"]
    (tmp_path / "off" / "head.json").write_text(json.dumps(config))
    old = load_head(str(tmp_path / "off"))
    assert old.pos_embedding is True  # written before the switch existed: the tower with its embedding
    with pytest.raises(UniqaError, match=r"head 'q' was trained on features of the image tower with its positional "
                                         r"embedding, the model runs without it \(pos_embedding=false\)"):
        MultiHeadScorer(off, {"q": old})
