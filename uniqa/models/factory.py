"""``create_model``: open_clip models by name, weights from any checkpoint format we read.

Names are open_clip architectures (the paper's is ``ViT-B-16-quickgelu``) or our JSON configs in
``model_configs/`` (registered with open_clip on import):

- ``uniqa-tiny``: embed 64, ViT width 64 / 2 layers / 64 px / patch 16, text width 64 / 2 layers /
  context 32 (3.4 M parameters, mostly the token embedding). For tests.
- ``uniqa-small``: embed 128, ViT width 128 / 4 layers / 64 px / patch 8, text width 128 / 4 layers /
  context 32 (8 M parameters). For the CPU demo: pre-trains and scores the embedded sample in seconds
  to minutes on two cores.

A path to a ``.json`` open_clip config also works as a name (registered under its file stem).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch

from uniqa import storage
from uniqa.errors import UniqaError
from uniqa.models.checkpoints import load_state_dict_into, read_checkpoint

CONFIG_DIR = Path(__file__).parent / "model_configs"
OUR_MODELS = tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
PRECISIONS = ("fp32", "fp16", "bf16", "pure_fp16", "pure_bf16", "amp", "amp_bf16")

open_clip.add_model_config(CONFIG_DIR)


@dataclass(frozen=True)
class ModelInfo:
    """Where a model's weights came from; attached to every model ``create_model`` returns."""

    name: str  # architecture name
    pretrained: str | None  # as given: None, a path/URI or an open_clip tag
    checksum: str | None  # sha256 of the weights file; "open_clip:<tag>" for tags; None for random init


def model_info(model: torch.nn.Module) -> ModelInfo:
    """The ``ModelInfo`` of a model built by ``create_model`` (unknown fields are None otherwise)."""
    return getattr(model, "uniqa_info", None) or ModelInfo(name="", pretrained=None, checksum=None)


def resolve_model_name(name: str) -> str:
    """Validated architecture name; a ``.json`` path is registered with open_clip first."""
    if name.endswith(".json"):
        if not os.path.isfile(name):
            raise UniqaError(f"model config file not found: {name}")
        open_clip.add_model_config(name)
        name = Path(name).stem
    if open_clip.get_model_config(name) is None:
        raise UniqaError(
            f"unknown model {name!r}; ours: {list(OUR_MODELS)}; open_clip also has {len(open_clip.list_models())} "
            "(e.g. 'ViT-B-16-quickgelu', see open_clip.list_models()); or pass a .json config path"
        )
    return name


def _pretrained_tag(name: str, pretrained: str | None) -> str | None:
    """``pretrained`` if it is an open_clip tag for ``name`` (and not an existing file), else None."""
    if not pretrained or storage.exists(pretrained):
        return None
    if open_clip.get_pretrained_cfg(name, pretrained):
        return pretrained
    if storage.looks_like_path(pretrained):
        raise UniqaError(f"no such checkpoint: {pretrained}")
    raise UniqaError(
        f"pretrained {pretrained!r} is neither a checkpoint file/folder nor an open_clip tag for {name}; "
        f"tags: {open_clip.list_pretrained_tags_by_model(name)}"
    )


def create_model(name: str, pretrained: str | None = None, device: str = "cpu", precision: str = "fp32"):
    """Build ``name`` and load ``pretrained`` -> ``(model, preprocess, tokenizer)``; the model is in eval mode.

    ``pretrained``: None (random init) | a local or ``s3://`` checkpoint in any format
    ``uniqa.models.checkpoints`` reads | an open_clip tag such as ``"openai"`` (downloads; needs a network).
    ``preprocess`` is open_clip's evaluation transform (PIL image -> normalised tensor).
    """
    name = resolve_model_name(name)
    if precision not in PRECISIONS:
        raise UniqaError(f"unknown precision {precision!r}; valid: {list(PRECISIONS)}")
    tag = _pretrained_tag(name, pretrained)
    checkpoint = read_checkpoint(pretrained) if pretrained and not tag else None
    if checkpoint is not None and checkpoint.model_name not in (None, name):
        raise UniqaError(f"checkpoint {pretrained} was saved for model {checkpoint.model_name!r}, not {name!r}")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=tag, device=device, precision=precision
        )
    except RuntimeError as e:
        if tag is None:
            raise
        raise UniqaError(f"could not fetch open_clip weights {name}/{tag} (a download, needs network): {e}") from e
    checksum = f"open_clip:{tag}" if tag else None
    if checkpoint is not None:
        load_state_dict_into(model, checkpoint.state_dict, source=pretrained, model_name=f"model {name!r}")
        checksum = checkpoint.checksum
    model.eval()
    model.uniqa_info = ModelInfo(name=name, pretrained=pretrained, checksum=checksum)
    return model, preprocess, open_clip.get_tokenizer(name)
