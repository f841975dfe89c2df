"""What a captioner backend is: a registered class that names its model, checks its own needs on the driver, and
describes its work as steps that :mod:`uniqa.captioning.caption_stage` (the only Ray wiring) applies in order.

A backend maps rows ``image_id, image_uri, task, level`` to caption rows (``image_id, task, caption, backend,
model, prompt_version, error``), one out per row in. Its steps are plain data, so backends import no Ray:

- :class:`MapStep`: a pure batch function for ``Dataset.map_batches``;
- :class:`LLMStep`: a ``ray.data.llm`` processor, named by its config class, with its pre/postprocess functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from uniqa.captioning import chat
from uniqa.captioning.config import CaptionConfig
from uniqa.captioning.instructions import TaskPrompts
from uniqa.data.images import DecodeConfig
from uniqa.registry import Registry


@dataclass(frozen=True)
class MapStep:
    """``ds.map_batches(fn, fn_kwargs=kwargs, batch_format=..., batch_size=..., num_cpus=...)``."""

    fn: Callable
    kwargs: dict[str, Any] = field(default_factory=dict)
    batch_format: str = "numpy"
    batch_size: int | None = None
    num_cpus: float | None = None


@dataclass(frozen=True)
class LLMStep:
    """``build_processor(ray.data.llm.<config>(**kwargs), preprocess=..., postprocess=...)(ds)``."""

    config: str  # a ray.data.llm processor config class, e.g. "HttpRequestProcessorConfig"
    kwargs: dict[str, Any]
    preprocess: Callable[[dict], dict]
    postprocess: Callable[[dict], dict]


Step = MapStep | LLMStep


DEFAULT_BLOCK_ROWS = 64


class Captioner:
    """Base of every backend: ``name`` is its registry name, ``model`` the name recorded on its caption rows."""

    name: str = ""

    def __init__(self, cfg: CaptionConfig):
        self.cfg = cfg

    @property
    def model(self) -> str:
        raise NotImplementedError

    def check(self) -> None:
        """What this backend needs on the driver (an extra installed, a model named), checked before any Ray
        work; raises :class:`~uniqa.errors.UniqaError`. Nothing by default."""

    def steps(self, prompts: TaskPrompts) -> list[Step]:
        """The steps from pending manifest rows to caption rows, with the run's prompts (task -> Prompt)."""
        raise NotImplementedError

    def block_rows(self, todo: int | None, cpus: float) -> int:
        """Rows per Ray Data block when ``rows_per_block`` is not set, for ``todo`` rows on a cluster of ``cpus``
        CPUs. A block is the unit of parallel work: 64 rows by default, so that a small job still spreads over
        many workers (an LLM's requests per block run concurrently)."""
        return DEFAULT_BLOCK_ROWS

    def prepare_output(self, out: str) -> int:
        """Pre-flight, before the finished ids are read: forget rows under ``out`` that a rerun should caption again
        (e.g. the ``openai`` backend's rows whose server was unreachable); returns how many. Nothing by default."""
        return 0


CAPTIONERS: Registry[type[Captioner]] = Registry("captioner")


def register(cls: type[Captioner]) -> type[Captioner]:
    """Class decorator: register a backend under its ``name``."""
    return CAPTIONERS.register(cls.name)(cls)


class ProcessorCaptioner(Captioner):
    """An MLLM behind a ``ray.data.llm`` processor: encode images to data URLs -> processor -> caption rows.
    A subclass gives ``max_pixels``/``jpeg_quality``/``encode_batch_size`` and :meth:`llm_step`."""

    max_pixels: int | None = None
    jpeg_quality: int = 90
    encode_batch_size: int = 16

    def llm_step(self, prompts: TaskPrompts) -> LLMStep:
        raise NotImplementedError

    def steps(self, prompts: TaskPrompts) -> list[Step]:
        encode = dict(decode=DecodeConfig(max_pixels=self.cfg.max_pixels), max_pixels=self.max_pixels,
                      quality=self.jpeg_quality)
        finish = dict(backend=self.name, model=self.model, version=self.cfg.prompt_version)
        return [MapStep(chat.encode_batch, encode, batch_size=self.encode_batch_size),
                self.llm_step(prompts),
                MapStep(chat.caption_table, finish, batch_format="pyarrow")]
