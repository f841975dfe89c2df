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

import json
import os
import posixpath
from dataclasses import dataclass, replace
from pathlib import Path

import open_clip
import torch

from uniqa import storage
from uniqa.errors import UniqaError
from uniqa.models.checkpoints import CONFIG_FILE, load_state_dict_into, read_checkpoint, weights_uri

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
    pos_embedding: bool = True  # False: the image tower runs without its positional embedding


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
        local = f"; the checkpoint {name} in the working directory is ./{name}" if os.path.exists(name) else ""
        raise UniqaError(
            f"unknown model {name!r}; ours: {list(OUR_MODELS)}; open_clip also has {len(open_clip.list_models())} "
            f"(e.g. 'ViT-B-16-quickgelu', see open_clip.list_models()); or pass a .json config path{local}"
        )
    return name


def pretrained_tag(name: str, pretrained: str | None) -> str | None:
    """``pretrained`` if it is an open_clip tag for ``name``; None for a checkpoint path or no weights.

    The one rule (:func:`uniqa.storage.looks_like_path`) decides from the text which it is; a path must
    exist, a tag must be one of ``name``'s (checked against open_clip's table: nothing is downloaded)."""
    if not pretrained:
        return None
    if storage.looks_like_path(pretrained):
        if not storage.exists(pretrained):
            raise UniqaError(f"no such checkpoint: {pretrained}")
        return None
    if open_clip.get_pretrained_cfg(name, pretrained):
        return pretrained
    raise UniqaError(
        f"pretrained {pretrained!r} is neither a checkpoint path nor an open_clip tag for {name} "
        f"(tags: {open_clip.list_pretrained_tags_by_model(name)}); a checkpoint in the working directory is "
        f"./{pretrained}"
    )


def resolve_model(model: str, pretrained: str | None) -> tuple[str, str | None]:
    """``--model`` may be an architecture name or one of our checkpoint folders / files whose config names the
    architecture -> (architecture, weights). Which one is decided from the text (:func:`uniqa.storage.looks_like_path`,
    the one rule); a checkpoint path must exist. The architecture is not validated here (see
    :func:`resolve_model_name`)."""
    if model.endswith(".json") or not storage.looks_like_path(model):
        return model, pretrained
    if not storage.exists(model):
        raise UniqaError(f"no such checkpoint: {model} (model takes a model name such as uniqa-tiny, or a "
                         "checkpoint folder / file)")
    if pretrained:
        raise UniqaError(f"model {model} is a checkpoint; do not also pass pretrained {pretrained}")
    weights = weights_uri(model)
    config_uri = storage.join(model if storage.is_dir(model) else posixpath.dirname(weights), CONFIG_FILE)
    name = json.loads(storage.read_bytes(config_uri)).get("model_name") if storage.exists(config_uri) else None
    if not name:
        raise UniqaError(f"checkpoint {model} does not name its model; pass --model NAME --pretrained {model}")
    return name, model


def model_image_size(name: str) -> int:
    """Input size in pixels of an architecture (validated; from its open_clip config, no weights loaded)."""
    size = open_clip.get_model_config(resolve_model_name(name))["vision_cfg"]["image_size"]
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def create_model(name: str, pretrained: str | None = None, device: str = "cpu", precision: str = "fp32",
                 pos_embedding: bool = True):
    """Build ``name`` and load ``pretrained`` -> ``(model, preprocess, tokenizer)``; the model is in eval mode.

    ``pretrained``: None (random init) | a local or ``s3://`` checkpoint in any format
    ``uniqa.models.checkpoints`` reads | an open_clip tag such as ``"openai"`` (downloads; needs a network).
    ``preprocess`` is open_clip's evaluation transform (PIL image -> normalised tensor). ``pos_embedding=False``:
    the image tower without its positional embedding (:func:`drop_positional_embedding`).
    """
    name = resolve_model_name(name)
    if precision not in PRECISIONS:
        raise UniqaError(f"unknown precision {precision!r}; valid: {list(PRECISIONS)}")
    tag = pretrained_tag(name, pretrained)
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
    if not pos_embedding:
        drop_positional_embedding(model)
    return model, preprocess, open_clip.get_tokenizer(name)


def drop_positional_embedding(model: torch.nn.Module) -> torch.nn.Module:
    """The image tower without its positional embedding, as the reference ensemble head runs it
    (``encode_image(x, pos_embedding=False)``: the embedding is never added). Zeroes, in place, a ViT's
    ``visual.positional_embedding`` (added before ``ln_pre``) or a ModifiedResNet's
    ``visual.attnpool.positional_embedding`` (added in the attention pool): adding zeros changes no value, so this
    is exactly the reference's switch. Recorded in the model's :class:`ModelInfo` (``pos_embedding=False``). A tower
    with neither (e.g. a timm trunk) raises :class:`UniqaError`. Returns ``model``."""
    visual = model.visual
    owner = visual if hasattr(visual, "positional_embedding") else getattr(visual, "attnpool", None)
    embedding = getattr(owner, "positional_embedding", None)
    if not isinstance(embedding, torch.Tensor):
        raise UniqaError(f"model {model_info(model).name or type(model).__name__!r}: its image tower "
                         f"({type(visual).__name__}) has no positional embedding to leave out; pos_embedding=false "
                         "works with ViT and ModifiedResNet towers")
    with torch.no_grad():
        embedding.zero_()
    model.uniqa_info = replace(model_info(model), pos_embedding=False)
    return model
