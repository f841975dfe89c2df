"""The offline ``attributes`` captioner: measured attributes (see :mod:`.measures`) -> one sentence.

The sentence starts with the prompt version's ``lead`` (which carries the level word G), then names
the salient attributes: defects first, most severe first (e.g. "blurry", "noisy", "pixelated", "strong
JPEG blocking artefacts"), topped up with the good qualities of the remaining aspects. Rules are data:
``(aspect, measure, op, threshold, phrase, severity, kind)``; per aspect the first matching rule wins,
else the aspect's ``GOOD`` phrase. ``kind`` "adj" phrases follow "it is", "with" phrases follow "with".
Thresholds were set on scikit-image's photos with graded blur, noise, JPEG, exposure and pixelation changes.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from PIL import Image

from uniqa.captioning.instructions import Prompt, TaskPrompts, prompt_for, task_prompts
from uniqa.captioning.measures import blockiness, luma, measure, pixelation
from uniqa.data.batches import decode_batch
from uniqa.data.images import DecodeConfig
from uniqa.errors import UniqaError

Rule = tuple[str, str, str, float, str, int, str]

QUALITY_RULES: tuple[Rule, ...] = (
    ("sharpness", "pixelation", ">", 0.45, "pixelated", 2, "adj"),  # lost detail: hard block edges are not sharp
    ("sharpness", "sharpness", "<", 6.0, "blurry", 2, "adj"),
    ("sharpness", "sharpness", "<", 12.0, "slightly soft", 1, "adj"),
    ("noise", "noise", ">", 6.0, "noisy", 2, "adj"),
    ("noise", "noise", ">", 2.5, "slightly noisy", 1, "adj"),
    ("compression", "blockiness", ">", 1.6, "strong JPEG blocking artefacts", 2, "with"),
    ("compression", "blockiness", ">", 1.25, "visible compression artefacts", 1, "with"),
    ("exposure", "brightness", "<", 0.2, "underexposed", 2, "adj"),
    ("exposure", "brightness", ">", 0.8, "overexposed", 2, "adj"),
    ("exposure", "bright_clip", ">", 0.1, "blown highlights", 1, "with"),
    ("exposure", "dark_clip", ">", 0.25, "crushed shadows", 1, "with"),
    ("contrast", "contrast", "<", 0.08, "low contrast", 1, "with"),
    ("contrast", "contrast", ">", 0.32, "harsh contrast", 1, "with"),
    ("colour", "colourfulness", "<", 10.0, "washed-out colours", 1, "with"),
    ("colour", "colourfulness", ">", 90.0, "oversaturated colours", 1, "with"),
)
QUALITY_GOOD = {"sharpness": ("sharp", "adj"), "noise": ("clean", "adj"), "exposure": ("well exposed", "adj"),
                "compression": ("free of compression artefacts", "adj"), "contrast": ("good contrast", "with"),
                "colour": ("natural colours", "with")}

AESTHETICS_RULES: tuple[Rule, ...] = (
    ("composition", "edge", ">", 0.45, "the main subject crowding the frame edge", 2, "with"),
    ("composition", "thirds", ">", 0.85, "the subject placed near a rule-of-thirds point", 1, "with"),
    ("composition", "centred", ">", 0.9, "a centred subject", 1, "with"),
    ("composition", "balance", "<", 0.5, "an off-balance composition", 1, "with"),
    ("lighting", "brightness", "<", 0.3, "dark, murky lighting", 2, "with"),
    ("lighting", "brightness", ">", 0.72, "bright, high-key lighting", 1, "with"),
    ("lighting", "contrast", "<", 0.1, "flat, low-contrast lighting", 2, "with"),
    ("lighting", "contrast", ">", 0.28, "dramatic contrast", 1, "with"),
    ("colour", "saturation", "<", 0.08, "a monochrome palette", 1, "with"),
    ("colour", "colourfulness", ">", 90.0, "garish, oversaturated colours", 2, "with"),
    ("colour", "colourfulness", "<", 20.0, "muted, dull colours", 2, "with"),
    ("colour", "harmony", "<", 0.6, "clashing hues", 2, "with"),
    ("colour", "colourfulness", ">", 60.0, "vivid colours", 1, "with"),
    ("depth", "isolation", ">", 3.5, "a sharp subject against a soft background", 1, "with"),
    ("depth", "sharpness", "<", 6.0, "soft focus throughout", 2, "with"),
)
AESTHETICS_GOOD = {"composition": ("a balanced composition", "with"), "lighting": ("even lighting", "with"),
                   "colour": ("harmonious colours", "with"), "depth": ("sharp focus throughout", "with")}


def matches(value: float, op: str, threshold: float) -> bool:
    return value < threshold if op == "<" else value > threshold


def salient_phrases(m: dict[str, float], rules: tuple[Rule, ...], good: dict, max_phrases: int = 4
                    ) -> list[tuple[str, str]]:
    """(phrase, kind) pairs: the first matching rule per aspect by severity, then good qualities."""
    found: dict[str, tuple[int, int, str, str]] = {}
    for order, (aspect, key, op, threshold, phrase, severity, kind) in enumerate(rules):
        if aspect not in found and matches(m[key], op, threshold):
            found[aspect] = (-severity, order, phrase, kind)
    chosen = [(p, k) for _, _, p, k in sorted(found.values())][:max_phrases]
    for aspect, (phrase, kind) in good.items():
        if len(chosen) >= max(2, min(max_phrases, 3)):
            break
        if aspect not in found:
            chosen.append((phrase, kind))
    return chosen


def join_words(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def sentence(lead: str, phrases: list[tuple[str, str]]) -> str:
    """``lead: it is A and B, with C and D.`` (or ``lead, with C and D.`` without adjectives)."""
    adjs = [p for p, k in phrases if k == "adj"]
    withs = [p for p, k in phrases if k == "with"]
    text = lead + (": it is " + join_words(adjs) if adjs else "")
    text += (", with " + join_words(withs)) if withs else ""
    return text + "."


def describe(m: dict[str, float], task: str, lead: str, max_phrases: int = 4) -> str:
    """The caption of an image with measures ``m`` for ``task`` (quality | aesthetics)."""
    rules, good = (QUALITY_RULES, QUALITY_GOOD) if task == "quality" else (AESTHETICS_RULES, AESTHETICS_GOOD)
    return sentence(lead, salient_phrases(m, rules, good, max_phrases))


def fit_side(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale (box filter) so the longer side is at most ``max_side``; smaller images unchanged."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def caption_image(image: np.ndarray, prompt: Prompt, level: str | None, max_side: int | None = 1024,
                  max_phrases: int = 4) -> tuple[str, dict[str, float]]:
    """(caption, measures) of one image. Blockiness (the JPEG grid) and pixelation (identical neighbours) are
    measured at full size, the rest on the image fitted to ``max_side`` so that the thresholds mean the same
    for every resolution."""
    m = measure(fit_side(image, max_side))
    if max_side and max(image.shape[:2]) > max_side:
        m.update(blockiness=blockiness(luma(image)), pixelation=pixelation(image))
    return describe(m, prompt.task, prompt.lead_text(level), max_phrases), m


ATTRIBUTES_MODEL = "attributes-v2"  # recorded as the caption rows' ``model``; bump when rules or measures change
MEASURES_TYPE = pa.map_(pa.string(), pa.float64())


def caption_batch(batch: dict[str, np.ndarray], prompts: TaskPrompts | None = None, max_side: int | None = 1024,
                  max_phrases: int = 4, max_pixels: int = 120_000_000) -> pa.Table:
    """``map_batches`` UDF (numpy in, pyarrow out): image_id, image_uri, task, level -> caption rows
    (image_id, task, caption, backend, model, prompt_version, error, measures), with ``prompts`` (task ->
    Prompt, one version; default: the packaged v1). A bad image or an unknown task/level is an error row,
    never an exception."""
    prompts = prompts or task_prompts()
    version = next(iter(prompts.values())).version
    decoded = decode_batch({"image_uri": batch["image_uri"]}, DecodeConfig(max_pixels=max_pixels))
    captions, measures, errors = [], [], list(decoded["error"])
    for image, task, level, i in zip(decoded["image"], batch["task"], batch["level"], range(len(errors))):
        caption, m = None, None
        if errors[i] is None:
            try:
                caption, m = caption_image(image, prompt_for(prompts, task), level or None, max_side, max_phrases)
            except UniqaError as e:
                errors[i] = str(e)
        captions.append(caption)
        measures.append(list(m.items()) if m else None)
    n = len(errors)
    return pa.table({
        "image_id": pa.array(batch["image_id"], pa.string()),
        "task": pa.array(batch["task"], pa.string()),
        "caption": pa.array(captions, pa.string()),
        "backend": pa.array(["attributes"] * n, pa.string()),
        "model": pa.array([ATTRIBUTES_MODEL] * n, pa.string()),
        "prompt_version": pa.array([version] * n, pa.string()),
        "error": pa.array(errors, pa.string()),
        "measures": pa.array(measures, MEASURES_TYPE),
    })
