"""The UniQA downstream head (METHOD §3), as published: frozen CLIP, a residual bottleneck adapter,
cached level-prompt embeddings, softmax over the five levels, expectation with trainable level values.

    f^ = f + ReLU(W2 ReLU(W1 f))                 W1: D -> D/2, W2: D/2 -> D, no biases
    l_gk = exp(logit_scale) * cos(f^, t_gk)      t: frozen prompt embeddings [G, 5, D]
    score = mean_g sum_k softmax_k(l_g)_k * s_k  s: trainable, initialised [0.2, 0.4, 0.6, 0.8, 1.0]

Zero-shot is the same head with no adapter and s frozen (``adapter=False``). For ViT-B/16 (D = 512) the
trained parameters number 2 * 512 * 256 + 5 = 262,149.

A head records the image tower it was made for: the model's name and weights checksum, and whether the tower ran
with its positional embedding (``pos_embedding``, ``head.json``; heads written before the key existed: true).
``uniqa score`` runs the tower the same way (:func:`uniqa.scoring.config.preflight`).
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from torch import nn

from uniqa import storage
from uniqa.adapters.prompts import N_LEVELS, PromptSet, get_prompt_set
from uniqa.errors import UniqaError

LEVEL_INIT = (0.2, 0.4, 0.6, 0.8, 1.0)
HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "head.json"
HEAD_FORMAT = "uniqa-head/1"
_CONFIG_KEYS = ("prompt_set", "embed_dim", "adapter", "hidden", "train_levels", "model_name", "model_checksum")


class LevelHead(nn.Module):
    """image features [B, D] (un-normalised, straight from ``encode_image``) -> score [B]."""

    def __init__(
        self,
        prompt_embeddings: torch.Tensor,  # [G, 5, D] text embeddings of the prompt set (normalised here)
        logit_scale: torch.Tensor | float,  # the CLIP model's log-scale parameter (exp is taken in forward)
        prompt_set: PromptSet,
        adapter: bool = True,
        hidden: int | None = None,  # adapter bottleneck width; default D // 2
        train_levels: bool | None = None,  # default: trainable iff the adapter is used (zero-shot freezes s)
        model_name: str = "",
        model_checksum: str | None = None,
        pos_embedding: bool = True,  # the image tower ran with its positional embedding (features it expects)
    ):
        super().__init__()
        groups, levels, dim = prompt_embeddings.shape
        if levels != N_LEVELS or groups != len(prompt_set.groups):
            raise UniqaError(
                f"prompt embeddings {list(prompt_embeddings.shape)} do not fit prompt set {prompt_set.name}"
            )
        self.prompt_set, self.model_name, self.model_checksum = prompt_set, model_name, model_checksum
        self.pos_embedding = bool(pos_embedding)
        self.embed_dim = dim
        self.hidden = (hidden or dim // 2) if adapter else 0
        self.register_buffer("prompt_embeddings", F.normalize(prompt_embeddings.detach().float(), dim=-1))
        scale = torch.as_tensor(logit_scale, dtype=torch.float32).detach().clone()  # a copy: never the model's
        self.register_buffer("logit_scale", scale.reshape(()))
        self.down = nn.Linear(dim, self.hidden, bias=False) if adapter else None
        self.up = nn.Linear(self.hidden, dim, bias=False) if adapter else None
        trainable = adapter if train_levels is None else train_levels
        self.levels = nn.Parameter(torch.tensor(LEVEL_INIT), requires_grad=trainable)

    @property
    def adapter(self) -> bool:
        return self.down is not None

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        tokenizer,
        prompt_set: PromptSet | str,
        adapter: bool = True,
        hidden: int | None = None,
        train_levels: bool | None = None,
    ) -> LevelHead:
        """Encode the prompt set once with ``model``'s text tower and take its logit scale (both frozen); the model's
        name, weights checksum and positional-embedding switch come from its ``ModelInfo``."""
        from uniqa.models.factory import model_info

        prompt_set = get_prompt_set(prompt_set) if isinstance(prompt_set, str) else prompt_set
        embeddings = encode_prompts(model, tokenizer, prompt_set)
        info = model_info(model)
        head = cls(embeddings, model.logit_scale, prompt_set, adapter, hidden, train_levels, info.name, info.checksum,
                   info.pos_embedding)
        return head.to(embeddings.device)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        f = image_features.to(self.levels.dtype)
        if self.down is not None:
            f = f + F.relu(self.up(F.relu(self.down(f))))
        f = F.normalize(f, dim=-1)
        groups, levels, dim = self.prompt_embeddings.shape
        # cos(f, t_gk) for every group and level as one matmul (a plain mm: half the per-step cost of an einsum
        # at the recipe's batch of 8, where per-op overhead dominates)
        cos = (f @ self.prompt_embeddings.reshape(groups * levels, dim).T).reshape(-1, groups, levels)
        logits = self.logit_scale.exp() * cos
        return (logits.softmax(dim=-1) @ self.levels).mean(dim=-1)

    def config(self) -> dict:
        """Everything ``load_head`` needs besides the tensors (written as ``head.json``)."""
        return {
            "format": HEAD_FORMAT,
            "prompt_set": {"name": self.prompt_set.name, "groups": [list(g) for g in self.prompt_set.groups]},
            "embed_dim": self.embed_dim,
            "adapter": self.adapter,
            "hidden": self.hidden,
            "train_levels": self.levels.requires_grad,
            "model_name": self.model_name,
            "model_checksum": self.model_checksum,
            "pos_embedding": self.pos_embedding,
        }


def encode_prompts(model: nn.Module, tokenizer, prompt_set: PromptSet) -> torch.Tensor:
    """Text embeddings [G, 5, D] of a prompt set (fp32, un-normalised), computed in eval mode without grad."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        embeddings = model.encode_text(tokenizer(prompt_set.prompts).to(device)).float()
    model.train(was_training)
    return embeddings.reshape(len(prompt_set.groups), N_LEVELS, -1)


def trainable_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def save_head(head: LevelHead, path: str) -> None:
    """Write ``head.safetensors`` + ``head.json`` into the folder ``path`` (local or ``s3://``)."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in head.state_dict().items()}
    storage.write_bytes(storage.join(path, HEAD_WEIGHTS), save(tensors))
    storage.write_bytes(storage.join(path, HEAD_CONFIG), json.dumps(head.config(), indent=2).encode())


def load_head(path: str) -> LevelHead:
    """A head written by ``save_head``; a missing or mismatched file raises ``UniqaError``."""
    from safetensors.torch import load

    from uniqa.models.checkpoints import state_dict_mismatches

    config = read_head_config(path)
    prompt_set = PromptSet(config["prompt_set"]["name"], tuple(tuple(g) for g in config["prompt_set"]["groups"]))
    shape = (len(prompt_set.groups), N_LEVELS, config["embed_dim"])
    head = LevelHead(
        torch.zeros(shape), 0.0, prompt_set, config["adapter"], config["hidden"] or None, config["train_levels"],
        config["model_name"], config["model_checksum"], config["pos_embedding"],
    )  # fmt: skip
    weights_uri = storage.join(path, HEAD_WEIGHTS)
    try:
        tensors = load(storage.read_bytes(weights_uri))
    except FileNotFoundError:
        raise UniqaError(f"head folder {path} has no {HEAD_WEIGHTS}") from None
    except Exception as e:  # a safetensors parse error: the file is damaged
        raise UniqaError(f"cannot read head weights {weights_uri}: {e}") from None
    problems = state_dict_mismatches(head.state_dict(), tensors)
    if problems:
        raise UniqaError(f"head weights {weights_uri} do not fit {HEAD_CONFIG}: {'; '.join(problems)}")
    head.load_state_dict(tensors)
    return head


def read_head_config(path: str) -> dict:
    """The ``head.json`` of the head folder ``path``, checked; ``pos_embedding`` filled in (true) for heads written
    before it was recorded."""
    config_uri = storage.join(path, HEAD_CONFIG)
    try:
        config = json.loads(storage.read_bytes(config_uri))
    except FileNotFoundError:
        raise UniqaError(f"no head at {path}: {HEAD_CONFIG} not found") from None
    except ValueError as e:
        raise UniqaError(f"{config_uri} is not valid JSON: {e}") from None
    if not isinstance(config, dict) or config.get("format") != HEAD_FORMAT:
        raise UniqaError(f"{config_uri} is not a uniqa head config (expected format {HEAD_FORMAT!r})")
    missing = [k for k in _CONFIG_KEYS if k not in config]
    if missing:
        raise UniqaError(f"{config_uri} lacks {missing}")
    config.setdefault("pos_embedding", True)
    if not isinstance(config["pos_embedding"], bool):
        raise UniqaError(f"{config_uri}: pos_embedding must be true or false, got {config['pos_embedding']!r}")
    return config
