"""Captioning: versioned prompts, captioner backends (attributes | openai | vllm) and the resumable run."""

from uniqa.captioning.backends import CAPTIONERS, create_captioner
from uniqa.captioning.config import AttributesConfig, CaptionConfig, OpenAIConfig, VLLMConfig
from uniqa.captioning.prompts import Prompt, get_prompt

__all__ = [
    "CAPTIONERS",
    "AttributesConfig",
    "CaptionConfig",
    "OpenAIConfig",
    "Prompt",
    "VLLMConfig",
    "create_captioner",
    "get_prompt",
]
