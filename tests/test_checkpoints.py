"""Checkpoint interop: OpenAI key format both ways, our safetensors folders, open_clip checkpoints, S3, and
bad files that must fail with a clear message and run nothing."""

from __future__ import annotations

import hashlib
import io
import json
import pickle

import pytest
import torch
from open_clip.model import build_model_from_openai_state_dict

from uniqa import storage
from uniqa.errors import UniqaError
from uniqa.models import (
    create_model,
    export_openai_state_dict,
    file_checksum,
    model_info,
    save_checkpoint,
    save_openai_state_dict,
)

OPENAI_KEYS = (  # METHOD §2: the keys of the released UniQA_weight.pt
    "visual.conv1.weight", "visual.proj", "text_projection", "positional_embedding", "token_embedding.weight",
    "ln_final.weight", "ln_final.bias", "transformer.resblocks.0.attn.in_proj_weight", "logit_scale",
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model, _, tokenizer = create_model("uniqa-tiny")
    with torch.no_grad():
        model.logit_scale.fill_(3.0)  # not the init value, so a silent re-init would show
    return model, tokenizer


def embeddings(model, tokenizer, size: int = 64, n_images: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        image = model.encode_image(torch.randn(n_images, 3, size, size, generator=g))
        text = model.encode_text(tokenizer(["a sharp photo of a cat", "noisy"]))
    return image, text


def assert_same_model(a, b, tokenizer, size: int = 64, n_images: int = 2):
    for x, y in zip(embeddings(a, tokenizer, size, n_images), embeddings(b, tokenizer, size, n_images)):
        assert torch.equal(x, y)
    assert torch.equal(a.logit_scale, b.logit_scale)


@pytest.mark.slow
def test_vit_b16_openai_format_round_trip(tmp_path):
    torch.manual_seed(1)
    model, _, tokenizer = create_model("ViT-B-16-quickgelu")
    path = str(tmp_path / "UniQA_weight.pt")
    checksum = save_openai_state_dict(model, path)
    state_dict = torch.load(path, weights_only=True, mmap=True)
    assert all(k in state_dict for k in OPENAI_KEYS) and len(state_dict) == len(model.state_dict())
    assert all(v.dtype == torch.float32 for v in state_dict.values())
    loaded, _, _ = create_model("ViT-B-16-quickgelu", pretrained=path)
    assert_same_model(model, loaded, tokenizer, size=224, n_images=1)
    assert model_info(loaded).checksum == checksum


def test_tiny_export_is_what_open_clip_openai_loader_reads(tiny):
    model, tokenizer = tiny
    state_dict = export_openai_state_dict(model)
    assert all(k in state_dict for k in OPENAI_KEYS)
    openai = build_model_from_openai_state_dict(dict(state_dict)).float()  # strict load, architecture inferred
    assert openai.visual.image_size == (64, 64) and openai.context_length == 32
    for ours, theirs in zip(embeddings(model, tokenizer), embeddings(openai, tokenizer)):
        assert torch.allclose(ours, theirs, rtol=2e-2, atol=2e-2)  # the OpenAI loader rounds weights to fp16


def test_our_safetensors_checkpoint_round_trip(tiny, tmp_path):
    model, tokenizer = tiny
    folder = tmp_path / "ck"
    checksum = save_checkpoint(model, "uniqa-tiny", str(folder))
    assert checksum == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert file_checksum(str(folder)) == file_checksum(str(folder / "model.safetensors")) == checksum
    config = json.loads((folder / "config.json").read_text())
    assert config["model_name"] == "uniqa-tiny" and config["model_cfg"]["embed_dim"] == 64
    for pretrained in (folder, folder / "model.safetensors"):
        loaded, _, _ = create_model("uniqa-tiny", pretrained=str(pretrained))
        assert_same_model(model, loaded, tokenizer)
        assert model_info(loaded).checksum == checksum
    with pytest.raises(UniqaError, match="saved for model 'uniqa-tiny', not 'uniqa-small'"):
        create_model("uniqa-small", pretrained=str(folder))


def test_open_clip_training_checkpoint_and_hub_snapshot_load(tiny, tmp_path):
    from safetensors.torch import save_file

    model, tokenizer = tiny
    wrapped = {"epoch": 3, "name": "run", "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    torch.save(wrapped, tmp_path / "epoch_3.pt")
    (tmp_path / "hub").mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "hub/open_clip_model.safetensors")
    for name in ("epoch_3.pt", "hub", "hub/open_clip_model.safetensors"):
        loaded, _, _ = create_model("uniqa-tiny", pretrained=str(tmp_path / name))
        assert_same_model(model, loaded, tokenizer)


def test_checkpoint_on_s3(tiny, s3_bucket, tmp_path):
    model, tokenizer = tiny
    folder, pt = f"{s3_bucket}/models/ck", f"{s3_bucket}/models/UniQA_weight.pt"
    checksum = save_checkpoint(model, "uniqa-tiny", folder)
    save_openai_state_dict(model, pt)
    assert file_checksum(folder) == checksum
    save_openai_state_dict(model, str(tmp_path / "local.pt"))
    assert file_checksum(pt) == file_checksum(str(tmp_path / "local.pt"))
    for pretrained in (folder, pt):
        loaded, _, _ = create_model("uniqa-tiny", pretrained=pretrained)
        assert_same_model(model, loaded, tokenizer)
    with pytest.raises(UniqaError, match="no such checkpoint"):
        create_model("uniqa-tiny", pretrained=f"{s3_bucket}/models/missing.pt")


class CreatesAFile:
    """Unpickling this would call open(path, "w"): code execution the loader must refuse."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("packaging", ["torch.save", "plain pickle"])
def test_a_pickle_that_would_run_code_is_refused(tmp_path, packaging):
    marker = tmp_path / "pwned"
    payload = {"visual.proj": torch.zeros(2), "evil": CreatesAFile(str(marker))}
    path = tmp_path / "weights.pt"
    if packaging == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(
        UniqaError,
        match="refusing to load .*weights.pt: it holds objects other than tensors and unpickling it could run code",
    ):
        create_model("uniqa-tiny", pretrained=str(path))
    assert not marker.exists()


def test_wrong_keys_and_shapes_are_named(tiny, tmp_path):
    model, _ = tiny
    state_dict = export_openai_state_dict(model)
    state_dict["visual.projection"] = state_dict.pop("visual.proj")
    torch.save(state_dict, tmp_path / "renamed.pt")
    with pytest.raises(UniqaError, match=r"1 missing keys \(visual.proj\); 1 unexpected keys \(visual.projection\)"):
        create_model("uniqa-tiny", pretrained=str(tmp_path / "renamed.pt"))
    save_openai_state_dict(model, str(tmp_path / "tiny.pt"))
    mismatch = r"tiny.pt does not fit model .uniqa-small.: 48 missing keys \(visual.transformer.resblocks.2"
    mismatch += r".*61 shape mismatches \(positional_embedding: checkpoint \[32, 64\] vs model \[32, 128\]"
    with pytest.raises(UniqaError, match=mismatch):
        create_model("uniqa-small", pretrained=str(tmp_path / "tiny.pt"))


def test_truncated_and_foreign_files_fail_clearly(tiny, tmp_path):
    model, _ = tiny
    save_openai_state_dict(model, str(tmp_path / "full.pt"))
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    save_checkpoint(model, "uniqa-tiny", str(tmp_path / "ck"))
    weights = (tmp_path / "ck" / "model.safetensors").read_bytes()
    (tmp_path / "ck" / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    torch.save([1, 2, 3], tmp_path / "list.pt")
    (tmp_path / "empty").mkdir()
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), buf)
    (tmp_path / "jit.pt").write_bytes(buf.getvalue())
    cases = {
        "cut.pt": "cannot read checkpoint .*cut.pt: .*is the file complete",
        "ck": "cannot read safetensors checkpoint .*model.safetensors.*is the file complete",
        "list.pt": "list.pt is not a state_dict of tensors \\(found list\\)",
        "empty": "checkpoint folder .*empty has no model.safetensors",
        "jit.pt": "jit.pt is a TorchScript archive",
    }
    for name, message in cases.items():
        with pytest.raises(UniqaError, match=message):
            create_model("uniqa-tiny", pretrained=str(tmp_path / name))
    assert storage.exists(str(tmp_path / "full.pt"))  # the intact file is untouched


def test_models_without_an_openai_equivalent_refuse_to_export():
    model, _, _ = create_model("uniqa-tiny")
    model.logit_bias = torch.nn.Parameter(torch.zeros(1))  # a SigLIP-style extra
    with pytest.raises(UniqaError, match="no OpenAI-format equivalent.*logit_bias"):
        export_openai_state_dict(model)


def test_export_copies_the_weights_unless_told_not_to(tiny):
    model, _ = tiny
    copied, shared = export_openai_state_dict(model), export_openai_state_dict(model, copy=False)
    assert copied["visual.proj"].data_ptr() != model.visual.proj.data_ptr()  # editing the export spares the model
    assert shared["visual.proj"].data_ptr() == model.visual.proj.data_ptr()
    assert all(torch.equal(copied[k], shared[k]) for k in copied) and list(copied) == list(shared)
