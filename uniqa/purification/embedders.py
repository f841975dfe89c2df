"""Text embedders for the relevance rank, behind one registry: ``embed(texts) -> (n, d) float32``,
rows L2-normalised.

- ``clip`` (default): the text tower of a CLIP model built by :func:`uniqa.models.create_model`
  (the same model family as pre-training; the paper's is ``ViT-B-16-quickgelu`` with OpenAI weights).
- ``bow``: hashed bag of words (lower-cased words, stop words dropped, 4096 buckets, sign-hashed,
  sublinear counts): lexical overlap with the caption, no model needed. For machines without CLIP
  weights, e.g. the offline demo.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from uniqa.errors import UniqaError
from uniqa.purification.clean import words
from uniqa.registry import Registry

Embedder = Callable[[list[str]], np.ndarray]
EMBEDDERS: Registry[Callable[..., Embedder]] = Registry("text embedder")
STOP_WORDS = frozenset(
    "a an and are as at be but by for from has have i in is it its me my of on or so that the this to was "
    "were what with you your".split()
)


@dataclass(frozen=True)
class EmbedderConfig:
    name: str = "clip"  # clip | bow (see uniqa.purification.embedders.EMBEDDERS)
    model: str = "ViT-B-16-quickgelu"  # clip: model name (open_clip or ours, e.g. uniqa-small) or .json config
    pretrained: str | None = "openai"  # clip: checkpoint path (local / s3://) or open_clip tag; None: random init
    device: str = "cpu"  # clip: torch device of each purification worker, e.g. cuda
    batch_size: int = 256  # clip: texts per forward pass
    dim: int = 4096  # bow: buckets

    def __post_init__(self):
        EMBEDDERS.get(self.name)
        if self.batch_size < 1 or self.dim < 1:
            raise UniqaError(f"embedder.batch_size and embedder.dim must be >= 1, got {self.batch_size}, {self.dim}")


def create_embedder(cfg: EmbedderConfig) -> Embedder:
    return EMBEDDERS.get(cfg.name)(cfg)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


@EMBEDDERS.register("bow")
class BagOfWords:
    def __init__(self, cfg: EmbedderConfig | None = None):
        self.dim = cfg.dim if cfg is not None else EmbedderConfig.dim

    def _bucket(self, word: str) -> tuple[int, float]:
        h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        return h % self.dim, 1.0 if (h >> 63) & 1 else -1.0

    def __call__(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            counts: dict[str, int] = {}
            for w in words(text):
                w = w.casefold()
                if w not in STOP_WORDS:
                    counts[w] = counts.get(w, 0) + 1
            for w, c in counts.items():
                j, sign = self._bucket(w)
                out[i, j] += sign * (1.0 + np.log(c))
        return l2_normalise(out)


@EMBEDDERS.register("clip")
class ClipText:
    def __init__(self, cfg: EmbedderConfig):
        from uniqa.models import create_model

        self.model, _, self.tokenizer = create_model(cfg.model, cfg.pretrained, device=cfg.device)
        self.device, self.batch_size = cfg.device, cfg.batch_size

    def __call__(self, texts: list[str]) -> np.ndarray:
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                tokens = self.tokenizer(texts[start:start + self.batch_size]).to(self.device)
                chunks.append(self.model.encode_text(tokens).float().cpu().numpy())
        dim = self.model.text_projection.shape[-1] if hasattr(self.model, "text_projection") else 0
        return l2_normalise(np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32))
