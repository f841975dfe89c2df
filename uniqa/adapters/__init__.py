"""Downstream adapters: level prompt sets (data) and the UniQA level head (METHOD §3)."""

from uniqa.adapters.head import LEVEL_INIT, LevelHead, encode_prompts, load_head, save_head, trainable_parameters
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
