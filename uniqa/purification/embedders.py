"""Text embedders for the relevance rank, behind one registry: ``embed(texts) -> (n, d) float32``,
rows L2-normalised.

- ``clip`` (default): the text tower of a CLIP model built by :func:`uniqa.models.create_model`
  (the same model family as pre-training; the paper's is ``ViT-B-16-quickgelu`` with OpenAI weights).
- ``bow``: hashed bag of words (lower-cased words with a plural "s" dropped, stop words dropped, 4096
  buckets, sign-hashed, sublinear counts), plus one token per photographic concept a word belongs to
  (:data:`CONCEPTS`: colour, light, contrast, composition, focus), so that "a lovely palette" and "vivid
  colours" overlap. No model needed: for machines without CLIP weights, e.g. the offline demo. The
  level words and "image"/"photo" are stop words: a caption's "The aesthetics of this image are good"
  must not make "Good luck everyone!" relevant.
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
    "were what with you your very really too much just "
    "image photo picture shot aesthetic aesthetics quality bad poor fair good perfect".split()
)
CONCEPTS = {  # concept -> the (singular, lower-case) words that talk about it
    "colour": "colour color colourful colorful hue tone palette saturation saturated oversaturated tint cast vivid "
              "garish muted dull washed grading warm monochrome",  # not "cool": mostly praise
    "light": "light lighting lit exposure exposed underexposed overexposed bright brightness dark murky muddy "
             "shadow highlight glow murk key",
    "contrast": "contrast tonal mono monochrome black white grey gray flat punchy dramatic drama harsh",
    "composition": "composition composed frame framing framed crop cropped third centre center centred centered "
                   "balance balanced placement placed space edge corner tilt tilted slanted rotation horizon crooked "
                   "subject",
    "focus": "focus focused sharp sharpness blur blurry soft bokeh depth background detail",
}


def concept_index(concepts: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """word -> its ``#concept`` tokens ("#": never part of a word, so a token never collides with one)."""
    index: dict[str, tuple[str, ...]] = {}
    for concept, names in concepts.items():
        for word in names.split():
            index[word] = (*index.get(word, ()), "#" + concept)
    return index


_CONCEPT_OF = concept_index(CONCEPTS)


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
            for token, count in token_counts(text).items():
                j, sign = self._bucket(token)
                out[i, j] += sign * (1.0 + np.log(count))
        return l2_normalise(out)


def normal_word(word: str) -> str:
    """Lower case, a plural "s" dropped ("colours" -> "colour"; not "glass", "this" or other stop words)."""
    w = word.casefold()
    return w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") and w not in STOP_WORDS else w


def token_counts(text: str) -> dict[str, int]:
    """The bag of ``text``: its normal words without stop words, plus ``#concept`` tokens (see CONCEPTS)."""
    counts: dict[str, int] = {}
    for word in map(normal_word, words(text)):
        if word in STOP_WORDS:
            continue
        for token in (word, *_CONCEPT_OF.get(word, ())):
            counts[token] = counts.get(token, 0) + 1
    return counts


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
