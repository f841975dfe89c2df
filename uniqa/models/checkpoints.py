"""Checkpoint files: read foreign ones safely, write ours, export the OpenAI key format.

Formats read (local path or ``s3://``):

- OpenAI-format CLIP state_dict ``.pt`` (flat keys ``visual.conv1.weight``, ``text_projection``, ...; the
  format of the released ``UniQA_weight.pt``), also with the extra keys of a TorchScript ``state_dict()``;
- an open_clip training checkpoint (``{"state_dict": ..., ...}``, keys possibly prefixed ``module.``);
- a bare ``.safetensors`` state_dict (e.g. ``open_clip_model.safetensors``);
- ours: a folder with ``model.safetensors`` + ``config.json`` (the model name and open_clip config);
- an open_clip hub snapshot folder (``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``).

Pickled files go through ``torch.load(weights_only=True)`` only, never a plain unpickler, so a file that
would run code, a TorchScript archive or a truncated file fails with a ``UniqaError`` and runs nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import posixpath
import re
import warnings
from dataclasses import dataclass

import torch

from uniqa import storage
from uniqa.errors import UniqaError

WEIGHTS_FILE = "model.safetensors"
_OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # an open_clip hub snapshot
CONFIG_FILE = "config.json"
FORMAT = "uniqa-checkpoint/1"
_JIT_EXTRAS = ("input_resolution", "context_length", "vocab_size")  # scalars in OpenAI's TorchScript state_dict
_OPENAI_KEYS = (
    "visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding", "visual.proj",
    "token_embedding.weight", "positional_embedding", "text_projection", "ln_final.weight", "logit_scale",
)  # fmt: skip
_OPENAI_OTHER_KEYS = ("visual.ln_pre.weight", "visual.ln_pre.bias", "visual.ln_post.weight", "visual.ln_post.bias",
                      "ln_final.bias")  # fmt: skip
_OPENAI_BLOCK_KEY = re.compile(
    r"(visual\.)?transformer\.resblocks\.\d+\."
    r"(attn\.(in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)|(ln_1|ln_2|mlp\.c_fc|mlp\.c_proj)\.(weight|bias))"
)


@dataclass(frozen=True)
class Checkpoint:
    state_dict: dict[str, torch.Tensor]
    uri: str  # the file the weights came from
    checksum: str  # sha256 of that file
    model_name: str | None = None  # from our config.json, when there is one


def _dirname(uri: str) -> str:
    return posixpath.dirname(storage.absolute(uri))


def weights_uri(path: str) -> str:
    """The weights file of a checkpoint: ``path`` itself, or ``path/model.safetensors`` for our folders."""
    path = os.fspath(path)
    if not storage.exists(path):
        raise UniqaError(f"no such checkpoint: {path}")
    if storage.is_dir(path):
        for name in (WEIGHTS_FILE, *_OPEN_CLIP_WEIGHTS):
            if storage.exists(storage.join(path, name)):
                return storage.join(path, name)
        raise UniqaError(f"checkpoint folder {path} has no {WEIGHTS_FILE} (expected {WEIGHTS_FILE} + {CONFIG_FILE})")
    return path


def file_checksum(path: str) -> str:
    """sha256 (hex) of a checkpoint's weights file, streamed; the same for our folder and its safetensors file."""
    fs, p = storage.resolve(weights_uri(path))
    digest = hashlib.sha256()
    with fs.open_input_stream(p) as f:
        while chunk := f.read(16 * 2**20):
            digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint(path: str) -> Checkpoint:
    """Read any supported checkpoint into a flat state_dict on the CPU (nothing is executed)."""
    uri = weights_uri(path)
    data = storage.read_bytes(uri)
    if uri.endswith(".safetensors"):
        state_dict = _load_safetensors(data, uri)
    else:
        state_dict = _unwrap(_torch_load(data, uri), uri)
    return Checkpoint(state_dict, uri, hashlib.sha256(data).hexdigest(), _config_model_name(uri))


def _config_model_name(uri: str) -> str | None:
    """Model name from a ``config.json`` beside a ``.safetensors`` file (ours), else None."""
    config_uri = storage.join(_dirname(uri), CONFIG_FILE)
    if not uri.endswith(".safetensors") or not storage.exists(config_uri):
        return None
    try:
        config = json.loads(storage.read_bytes(config_uri))
    except ValueError as e:
        raise UniqaError(f"checkpoint config {config_uri} is not valid JSON: {e}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        return None  # someone else's config.json: the weights still load by key
    return config.get("model_name")


def _load_safetensors(data: bytes, uri: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    try:
        return load(data)
    except Exception as e:  # SafetensorError is not importable by name; any failure means a bad file
        raise UniqaError(f"cannot read safetensors checkpoint {uri}: {e} (is the file complete?)") from None


def _torch_load(data: bytes, uri: str) -> object:
    try:
        with warnings.catch_warnings():  # torch warns it is "dispatching to torch.jit.load"; it raises instead
            warnings.filterwarnings("ignore", message=".*TorchScript archive")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UniqaError(
            f"refusing to load {uri}: it holds objects other than tensors and unpickling it could run code "
            f"(torch.load(weights_only=True) said: {_reason(e)})"
        ) from None
    except RuntimeError as e:
        if "TorchScript" in str(e):
            raise UniqaError(
                f"{uri} is a TorchScript archive, which holds code and is not loaded; use the open_clip tag "
                "(e.g. pretrained='openai') or save its state_dict() as a plain .pt"
            ) from None
        raise UniqaError(f"cannot read checkpoint {uri}: {_reason(e)} (is the file complete?)") from None
    except (EOFError, ValueError, OSError) as e:
        raise UniqaError(f"cannot read checkpoint {uri}: {type(e).__name__}: {_reason(e)}") from None


def _reason(e: Exception) -> str:
    """The informative line of torch's long error messages."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else type(e).__name__


def _unwrap(obj: object, uri: str) -> dict[str, torch.Tensor]:
    """open_clip training checkpoint / DDP prefix / TorchScript extras -> flat state_dict of tensors."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UniqaError(f"{uri} is not a state_dict of tensors (found {type(obj).__name__})")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return {k: v for k, v in obj.items() if k not in _JIT_EXTRAS}


def load_state_dict_into(
    model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str, model_name: str = "this model"
) -> None:
    """Strictly load ``state_dict`` into an open_clip model; every missing, unexpected or misshapen key
    is reported (a few by name) in one ``UniqaError`` before anything is copied."""
    from open_clip.model import convert_to_custom_text_state_dict

    if not hasattr(model, "positional_embedding"):  # CustomTextCLIP keeps its text tower under .text
        state_dict = convert_to_custom_text_state_dict(state_dict)
    expected = model.state_dict()
    if "logit_scale" in state_dict and "logit_scale" in expected:  # scalar vs [1] between versions
        state_dict = {**state_dict, "logit_scale": state_dict["logit_scale"].reshape(expected["logit_scale"].shape)}
    problems = state_dict_mismatches(expected, state_dict)
    if problems:
        raise UniqaError(f"checkpoint {source} does not fit {model_name}: {'; '.join(problems)}")
    model.load_state_dict(state_dict, strict=True)


def state_dict_mismatches(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> list[str]:
    """Human-readable missing / unexpected / misshapen keys of ``got`` against ``expected`` (empty if it fits)."""

    def listed(what: str, keys: list[str]) -> list[str]:
        more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
        return [f"{len(keys)} {what} ({', '.join(keys[:3])}{more})"] if keys else []

    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [
        f"{k}: checkpoint {list(got[k].shape)} vs model {list(v.shape)}"
        for k, v in expected.items()
        if k in got and got[k].shape != v.shape
    ]
    return listed("missing keys", missing) + listed("unexpected keys", unexpected) + listed("shape mismatches", shapes)


def _cpu_fp32(state_dict: dict[str, torch.Tensor], copy: bool = True) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors, floats in fp32; ``copy=False`` may share memory with the model
    (enough for ``torch.save``, which copies anyway)."""
    out = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
           for k, v in state_dict.items()}
    return {k: v.clone() for k, v in out.items()} if copy else out


def save_checkpoint(model: torch.nn.Module, model_name: str, path: str) -> str:
    """Write our checkpoint folder (``model.safetensors`` in fp32 + ``config.json``); returns its checksum."""
    import open_clip
    from safetensors.torch import save

    model_cfg = open_clip.get_model_config(model_name)
    if model_cfg is None:
        raise UniqaError(f"unknown model {model_name!r}: save_checkpoint needs the name the model was built with")
    data = save(_cpu_fp32(model.state_dict()))
    storage.write_bytes(storage.join(path, WEIGHTS_FILE), data)
    config = {
        "format": FORMAT,
        "model_name": model_name,
        "model_cfg": model_cfg,
        "preprocess_cfg": getattr(model.visual, "preprocess_cfg", None),
        "open_clip_version": open_clip.__version__,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    storage.write_bytes(storage.join(path, CONFIG_FILE), json.dumps(config, indent=2).encode())
    return config["sha256"]


def export_openai_state_dict(model: torch.nn.Module, copy: bool = True) -> dict[str, torch.Tensor]:
    """The model's weights under OpenAI CLIP's flat keys, fp32 on the CPU (what ``UniQA_weight.pt`` holds);
    ``copy=False`` may share memory with the model instead of copying every tensor."""
    from open_clip.model import CLIP
    from open_clip.transformer import VisionTransformer

    if type(model) is not CLIP or not isinstance(model.visual, VisionTransformer):
        raise UniqaError(
            f"{type(model).__name__} with a {type(model.visual).__name__} image tower has no OpenAI CLIP "
            "equivalent; only open_clip CLIP models with a ViT image tower export to the OpenAI format"
        )
    state_dict = _cpu_fp32(model.state_dict(), copy)
    missing = [k for k in _OPENAI_KEYS if k not in state_dict]
    known = set(_OPENAI_KEYS) | set(_OPENAI_OTHER_KEYS)
    extra = [k for k in state_dict if k not in known and not _OPENAI_BLOCK_KEY.fullmatch(k)]
    if missing or extra:
        raise UniqaError(f"model has no OpenAI-format equivalent: missing keys {missing[:3]}, extra keys {extra[:3]}")
    return state_dict


def save_openai_state_dict(model: torch.nn.Module, path: str) -> str:
    """``torch.save`` the OpenAI-format state_dict to a local or ``s3://`` file; returns its sha256."""
    buf = io.BytesIO()
    torch.save(export_openai_state_dict(model, copy=False), buf)
    data = buf.getbuffer()  # no second copy of a ~600 MB ViT-B/16 file
    storage.write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()
