"""Downstream adapters: level prompt sets (data) and the UniQA level head (METHOD §3).

The head (torch) is imported on first use, so ``uniqa --help`` and configs that only name prompt sets stay fast.
"""

from uniqa.adapters.prompts import (
    AESTHETICS,
    AESTHETICS_ENSEMBLE,
    PROMPT_SETS,
    QUALITY,
    QUALITY_ENSEMBLE,
    PromptSet,
    get_prompt_set,
    register_prompt_set,
)

__all__ = [
    "AESTHETICS",
    "AESTHETICS_ENSEMBLE",
    "LEVEL_INIT",
    "PROMPT_SETS",
    "QUALITY",
    "QUALITY_ENSEMBLE",
    "LevelHead",
    "PromptSet",
    "encode_prompts",
    "get_prompt_set",
    "load_head",
    "register_prompt_set",
    "save_head",
    "trainable_parameters",
]

_HEAD = ("LEVEL_INIT", "LevelHead", "encode_prompts", "load_head", "save_head", "trainable_parameters")


def __getattr__(name: str):
    if name in _HEAD:
        from uniqa.adapters import head

        return getattr(head, name)
    raise AttributeError(f"module 'uniqa.adapters' has no attribute {name!r}")
