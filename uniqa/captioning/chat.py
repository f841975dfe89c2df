"""Pure helpers shared by the MLLM captioners (``openai``, ``vllm``): images as base64 JPEG data URLs,
OpenAI-style chat messages, response parsing, and the final caption rows.

Rows that cannot be captioned carry ``__inference_error__`` (ray.data.llm's error column): every
ray.data.llm stage passes such rows through untouched, so a bad image never reaches the model and
the row count out equals the row count in.
"""

from __future__ import annotations

import base64

import numpy as np
import pyarrow as pa
from PIL import Image

from uniqa.captioning.instructions import Prompt, TaskPrompts, prompt_for
from uniqa.data.batches import decode_batch
from uniqa.data.images import DecodeConfig, to_jpeg_bytes

ERROR_KEY = "__inference_error__"  # ray.data.llm's per-row error column
MAX_ERROR_CHARS = 300  # error strings are truncated (a server may echo the whole base64 image)


def fit_pixels(image: np.ndarray, max_pixels: int | None) -> np.ndarray:
    """Downscale (bicubic) so that width x height <= ``max_pixels``; smaller images unchanged."""
    h, w = image.shape[:2]
    if not max_pixels or h * w <= max_pixels:
        return image
    scale = (max_pixels / (h * w)) ** 0.5
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


def data_url(image: np.ndarray, max_pixels: int | None = None, quality: int = 90) -> str:
    """``data:image/jpeg;base64,...`` of ``image`` fitted to the pixel budget."""
    jpeg = to_jpeg_bytes(fit_pixels(image, max_pixels), quality)
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def encode_batch(batch: dict[str, np.ndarray], decode: DecodeConfig, max_pixels: int | None, quality: int
                 ) -> dict[str, np.ndarray]:
    """``map_batches`` UDF (numpy): image_id, image_uri, task, level -> image_id, task, level, image_url
    (data URL, "" when the image failed) and error (None or why). Images do not leave the UDF."""
    decoded = decode_batch({"image_uri": batch["image_uri"]}, decode)
    urls = np.array([data_url(im, max_pixels, quality) if im is not None and err is None else ""
                     for im, err in zip(decoded["image"], decoded["error"])], dtype=object)
    return {"image_id": batch["image_id"], "task": batch["task"], "level": batch["level"],
            "image_url": urls, "error": decoded["error"]}


def chat_messages(prompt: Prompt, level: str | None, image_url: str) -> list[dict]:
    """System + user messages; the user content is an image part (data URL) and a text part."""
    return [
        {"role": "system", "content": prompt.system},
        {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": image_url}},
            {"type": "text", "text": prompt.user_text(level)},
        ]},
    ]


def row_messages(row: dict, prompts: TaskPrompts) -> tuple[list[dict], str]:
    """(messages, error) of one encoded row with the run's ``prompts`` (task -> Prompt); a row that already
    failed gets its error and no image."""
    error = truncate(row.get("error")) or ""
    try:
        prompt = prompt_for(prompts, row["task"])
        messages = chat_messages(prompt, row.get("level"), "" if error else row["image_url"])
    except ValueError as e:  # unknown task / level: an error row, not a failed job
        messages, error = chat_messages(next(iter(prompts.values())), None, ""), error or truncate(str(e))
    return messages, error


def parse_chat_response(response: dict | None) -> tuple[str | None, str | None]:
    """(caption, error) from an OpenAI chat-completions JSON (or our session's ``uniqa_error``)."""
    if not isinstance(response, dict):
        return None, "no response"
    if response.get("uniqa_error"):
        return None, truncate(response["uniqa_error"])
    try:
        content = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None, truncate(f"response has no choices[0].message.content: {response}")
    text = " ".join(str(content or "").split())
    return (text, None) if text else (None, "empty caption in response")


def truncate(text: str | None, limit: int = MAX_ERROR_CHARS) -> str | None:
    if text is None:
        return None
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def caption_table(batch: pa.Table, backend: str, model: str, version: str) -> pa.Table:
    """Normalise a processor's output batch (success rows + pass-through error rows, where any column may
    be absent) to the caption columns: image_id, task, caption, backend, model, prompt_version, error."""
    n = len(batch)
    column = lambda name: batch[name].to_pylist() if name in batch.column_names else [None] * n  # noqa: E731
    captions, errors = column("caption"), column("error")
    for i, err in enumerate(column(ERROR_KEY)):
        if err:
            captions[i], errors[i] = None, errors[i] or truncate(err)
        elif not captions[i] and not errors[i]:
            errors[i] = "no caption produced"
    return pa.table({
        "image_id": pa.array(column("image_id"), pa.string()),
        "task": pa.array(column("task"), pa.string()),
        "caption": pa.array([None if e else c for c, e in zip(captions, errors)], pa.string()),
        "backend": pa.array([backend] * n, pa.string()),
        "model": pa.array([model] * n, pa.string()),
        "prompt_version": pa.array([version] * n, pa.string()),
        "error": pa.array(errors, pa.string()),
    })
