"""One image-encoder pass, several level heads (e.g. ``quality`` and ``aesthetics``).

The encoder pass is :class:`uniqa.models.encoder.ImageEncoder` (shared with cached features and adapter
training). Determinism: the encoder and the heads always run on its fixed-size chunks of ``chunk`` views (the
last one padded with black views), so a view's arithmetic never depends on how many other images share its
batch or where it sits: scores are bit-identical whatever the batch size and order, for a given ``chunk``,
device and precision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from uniqa.adapters.head import LevelHead
from uniqa.errors import UniqaError
from uniqa.models.encoder import ImageEncoder
from uniqa.models.factory import model_info

EMBEDDING = "embedding"


class MultiHeadScorer(nn.Module):
    """uint8 views [B, V, H, W, 3] -> {head name: score [B]} (+ ``"embedding"`` [B, D]); always eval, no grad."""

    def __init__(self, model: nn.Module, heads: dict[str, LevelHead], chunk: int = 64):
        super().__init__()
        _check_heads(model, heads)
        self.encoder = ImageEncoder(model, chunk)
        self.heads, self.chunk = nn.ModuleDict(heads).to(self.encoder.mean.device), chunk
        self.image_size = self.encoder.image_size
        self.eval()

    def train(self, mode: bool = True) -> MultiHeadScorer:
        return super().train(False)  # a scorer is never in training mode (dropout, batch statistics)

    @torch.no_grad()
    def forward(self, views: torch.Tensor, return_embeddings: bool = False) -> dict[str, torch.Tensor]:
        batch, n_views = self._check_views(views)
        flat = views.reshape(batch * n_views, *views.shape[2:])
        parts = [self._heads_of(features, n, return_embeddings) for features, n in self.encoder.chunks(flat)]
        out = {}
        for key in parts[0]:
            per_view = torch.cat([p[key] for p in parts]).reshape(batch, n_views, -1)
            out[key] = per_view.mean(dim=1) if key == EMBEDDING else per_view.mean(dim=1).squeeze(-1)
        return out

    def _heads_of(self, features: torch.Tensor, n: int, return_embeddings: bool) -> dict[str, torch.Tensor]:
        """Every head on one padded chunk of features; the first ``n`` rows are real."""
        out = {name: head(features)[:n, None] for name, head in self.heads.items()}
        if return_embeddings:
            out[EMBEDDING] = F.normalize(features[:n], dim=-1)
        return out

    def encode(self, views: torch.Tensor) -> torch.Tensor:
        """uint8 [N, H, W, 3] -> un-normalised image features [N, D] (fp32)."""
        return self.encoder.encode(views)

    def _check_views(self, views: torch.Tensor) -> tuple[int, int]:
        if views.dtype != torch.uint8 or views.ndim != 5 or views.shape[-1] != 3:
            raise UniqaError(f"views must be uint8 [B, V, H, W, 3], got {views.dtype} {list(views.shape)}")
        if tuple(views.shape[2:4]) != self.image_size:
            raise UniqaError(f"views are {tuple(views.shape[2:4])} pixels, the model takes {self.image_size}")
        if views.shape[0] == 0 or views.shape[1] == 0:
            raise UniqaError(f"no views to score: shape {list(views.shape)}")
        return views.shape[0], views.shape[1]


def _check_heads(model: nn.Module, heads: dict[str, LevelHead]) -> None:
    """Heads must exist, fit the model's embedding width, its positional-embedding switch and (when both are known)
    its weights."""
    if not heads:
        raise UniqaError("MultiHeadScorer needs at least one head")
    if EMBEDDING in heads:
        raise UniqaError(f"{EMBEDDING!r} is reserved for the embedding output; rename that head")
    dim = getattr(model.visual, "output_dim", None)
    info = model_info(model)
    checksum = info.checksum
    for name, head in heads.items():
        if head.pos_embedding != info.pos_embedding:
            state = {True: "with", False: "without"}
            raise UniqaError(f"head {name!r} was trained on features of the image tower {state[head.pos_embedding]} "
                             f"its positional embedding, the model runs {state[info.pos_embedding]} it "
                             f"(pos_embedding={str(info.pos_embedding).lower()})")
        if dim is not None and head.embed_dim != dim:
            raise UniqaError(f"head {name!r} expects {head.embed_dim}-d features, the model makes {dim}-d")
        if checksum and head.model_checksum and head.model_checksum != checksum:
            raise UniqaError(
                f"head {name!r} was built on model weights {head.model_checksum[:16]}..., "
                f"these are {checksum[:16]}...: its prompt embeddings would not match"
            )
