"""create_model: our JSON configs, open_clip names, config files, precision, and clear errors."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from uniqa.errors import UniqaError
from uniqa.models import OUR_MODELS, create_model, model_info, save_checkpoint


def test_tiny_config_has_the_documented_shape():
    model, preprocess, tokenizer = create_model("uniqa-tiny")
    assert not model.training
    assert model.visual.image_size == (64, 64) and model.visual.output_dim == 64
    assert len(model.visual.transformer.resblocks) == 2 and len(model.transformer.resblocks) == 2
    assert model.transformer.width == 64 and model.context_length == 32
    tokens = tokenizer(["a sharp photo", "a blurry photo"])
    assert tokens.shape == (2, 32)
    with torch.no_grad():
        assert model.encode_text(tokens).shape == (2, 64)
        assert model.encode_image(torch.randn(3, 3, 64, 64)).shape == (3, 64)
    assert preprocess.transforms[0].size == 64
    assert model_info(model).name == "uniqa-tiny" and model_info(model).checksum is None


def test_small_config_has_the_documented_shape():
    model, _, tokenizer = create_model("uniqa-small")
    assert model.visual.image_size == (64, 64) and model.visual.patch_size == (8, 8)
    assert model.visual.output_dim == 128 and model.transformer.width == 128
    assert len(model.visual.transformer.resblocks) == 4 and len(model.transformer.resblocks) == 4
    assert tokenizer(["x"]).shape == (1, 32)
    assert set(OUR_MODELS) == {"uniqa-tiny", "uniqa-small"}


def test_a_json_config_path_is_a_model_name(tmp_path):
    config = {
        "embed_dim": 48,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 1},
    }
    path = tmp_path / "my-net.json"
    path.write_text(json.dumps(config))
    model, _, tokenizer = create_model(str(path))
    assert model.visual.output_dim == 48 and model_info(model).name == "my-net"
    assert tokenizer(["x"]).shape == (1, 16)


def test_precision_casts_weights_loaded_from_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    model, _, _ = create_model("uniqa-tiny")
    save_checkpoint(model, "uniqa-tiny", str(tmp_path / "ck"))
    half, _, _ = create_model("uniqa-tiny", str(tmp_path / "ck"), precision="bf16")
    assert half.visual.conv1.weight.dtype == torch.bfloat16
    assert torch.equal(half.visual.conv1.weight, model.visual.conv1.weight.to(torch.bfloat16))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "ViT-Q-99"}, "unknown model 'ViT-Q-99'; ours: \\['uniqa-small', 'uniqa-tiny'\\]"),
        ({"name": "missing.json"}, "model config file not found"),
        ({"name": "uniqa-tiny", "precision": "fp8"}, "unknown precision 'fp8'; valid: \\['fp32'"),
        ({"name": "ViT-B-16-quickgelu", "pretrained": "laion9000"}, "nor an open_clip tag.*'openai'"),
        ({"name": "uniqa-tiny", "pretrained": "/nowhere/weights.pt"}, "no such checkpoint: /nowhere/weights.pt"),
    ],
)
def test_bad_arguments_fail_clearly(kwargs, message):
    with pytest.raises(UniqaError, match=message):
        create_model(**kwargs)


def test_path_or_tag_is_decided_from_the_text(tmp_path, monkeypatch):
    """The one rule (storage.looks_like_path): a folder named like a tag is still a tag; ./NAME is a path."""
    from uniqa import storage
    from uniqa.models.factory import pretrained_tag

    monkeypatch.chdir(tmp_path)
    (tmp_path / "openai").mkdir()
    (tmp_path / "weights").mkdir()
    assert pretrained_tag("ViT-B-16-quickgelu", "openai") == "openai"
    assert pretrained_tag("uniqa-tiny", "./weights") is None and pretrained_tag("uniqa-tiny", None) is None
    with pytest.raises(UniqaError, match=r"neither a checkpoint path nor an open_clip tag.* is \./weights"):
        pretrained_tag("uniqa-tiny", "weights")
    with pytest.raises(UniqaError, match="^no such checkpoint: w.safetensors$"):
        pretrained_tag("uniqa-tiny", "w.safetensors")
    assert [storage.looks_like_path(t) for t in ("openai", "laion2b_s34b_b88k", "a/b", "s3://b/k", "m.PT", "x.json")] \
        == [False, False, True, True, True, False]
    with pytest.raises(UniqaError, match=r"unknown model 'weights'.*is \./weights"):
        create_model("weights")


def test_open_clip_tags_are_passed_through_and_failures_explained(monkeypatch):
    calls = []

    def offline(name, pretrained=None, **kwargs):
        calls.append((name, pretrained))
        raise RuntimeError("Failed to download weights (offline)")

    monkeypatch.setattr(open_clip, "create_model_and_transforms", offline)
    with pytest.raises(UniqaError, match="could not fetch open_clip weights ViT-B-16-quickgelu/openai"):
        create_model("ViT-B-16-quickgelu", "openai")
    assert calls == [("ViT-B-16-quickgelu", "openai")]


def _vit_features(visual, x: torch.Tensor, add_positional_embedding: bool) -> torch.Tensor:
    """open_clip's ViT forward written out, the positional embedding added or not (the reference's switch)."""
    x = visual.conv1(x)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    x = torch.cat([visual.class_embedding.expand(x.shape[0], 1, -1).to(x.dtype), x], dim=1)
    if add_positional_embedding:
        x = x + visual.positional_embedding.to(x.dtype)
    x = visual.transformer(visual.ln_pre(x))
    pooled, _ = visual._pool(x)
    return pooled @ visual.proj


def test_pos_embedding_false_runs_the_image_tower_without_its_positional_embedding():
    """The reference ensemble head (UniQA_Adapter_Patchtest_PromptEs) calls encode_image(x, pos_embedding=False):
    the ViT's embedding is never added. Zeroing it is exactly that; the default is today's model."""
    x = torch.randn(3, 3, 64, 64)
    torch.manual_seed(0)
    on, _, _ = create_model("uniqa-tiny")
    torch.manual_seed(0)
    off, _, _ = create_model("uniqa-tiny", pos_embedding=False)
    torch.manual_seed(0)
    plain = open_clip.create_model("uniqa-tiny").eval()  # open_clip's own model, no switch: today's features
    with torch.no_grad():
        with_pe, without_pe = on.encode_image(x), off.encode_image(x)
        assert torch.equal(with_pe, plain.encode_image(x))
        assert torch.allclose(with_pe, _vit_features(plain.visual, x, True), atol=1e-6)
        assert torch.allclose(without_pe, _vit_features(plain.visual, x, False), atol=1e-6)
        assert (with_pe - without_pe).abs().max() > 1e-3
    assert model_info(off).pos_embedding is False and model_info(on).pos_embedding is True
    assert torch.equal(off.encode_text(torch.ones(1, 32, dtype=torch.long)),
                       on.encode_text(torch.ones(1, 32, dtype=torch.long)))  # the text tower is untouched


def test_pos_embedding_switch_on_a_resnet_tower_and_a_clear_error_without_one():
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    from uniqa.models.encoder import frozen_model
    from uniqa.models.factory import drop_positional_embedding

    torch.manual_seed(0)
    resnet = CLIP(64, CLIPVisionCfg(layers=(1, 1, 1, 1), width=8, image_size=32),
                  CLIPTextCfg(context_length=8, vocab_size=100, width=16, heads=1, layers=1)).eval()
    before = resnet.visual.attnpool.positional_embedding.detach().clone()
    drop_positional_embedding(resnet)
    assert before.abs().max() > 0 and not resnet.visual.attnpool.positional_embedding.any()  # the attention pool's
    assert model_info(resnet).pos_embedding is False
    no_tower = torch.nn.Module()
    no_tower.visual = torch.nn.Linear(2, 2)
    with pytest.raises(UniqaError, match=r"\(Linear\) has no positional embedding to leave out"):
        drop_positional_embedding(no_tower)
    with pytest.raises(UniqaError, match="timm model 'convnext_base'.*pos_embedding=false works with ViT"):
        frozen_model("convnext_base", None, pos_embedding=False)
