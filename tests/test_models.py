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
