"""Captioner backends behind one registry; each backend file registers itself and names its model.

- ``attributes`` (:mod:`.attributes`): offline, CPU; measured attributes -> a sentence.
- ``openai`` (:mod:`.openai`): any OpenAI-compatible endpoint through ``ray.data.llm``'s HTTP processor.
- ``vllm`` (:mod:`.vllm`): in-process vLLM engines on GPU actors (the ``uniqa[vllm]`` extra).

A new backend: a :class:`~.base.Captioner` subclass with ``name``, ``model`` and ``steps()`` in its own file,
decorated with :func:`~.base.register`, and imported below.
"""

from __future__ import annotations

from uniqa.captioning.backends import attributes, openai, vllm  # noqa: F401  (each registers itself)
from uniqa.captioning.backends.base import CAPTIONERS, Captioner, LLMStep, MapStep, Step
from uniqa.captioning.config import CaptionConfig

__all__ = ["CAPTIONERS", "Captioner", "LLMStep", "MapStep", "Step", "create_captioner"]


def create_captioner(cfg: CaptionConfig) -> Captioner:
    """The one constructor: the backend ``cfg.backend`` names; an unknown name lists the known ones."""
    return CAPTIONERS.get(cfg.backend)(cfg)
