"""Captioner backends behind one registry, each a Ray Data stage wiring over pending manifest rows.

A captioner maps a dataset with columns ``image_id, image_uri, task, level`` to caption rows
(``image_id, task, caption, backend, model, prompt_version, error``), one out per row in:

- ``attributes``: offline, CPU; :func:`uniqa.captioning.attributes.caption_batch` as ``map_batches``.
- ``openai``: ``ray.data.llm.HttpRequestProcessorConfig`` against any OpenAI-compatible endpoint, with
  the never-raising session of :mod:`.http_session` (HTTP errors and timeouts become error rows).
- ``vllm``: ``ray.data.llm.vLLMEngineProcessorConfig`` with the multimodal stage, engines on GPU
  actors; needs the ``uniqa[vllm]`` extra (imported only when the processor is built).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from uniqa.captioning import chat
from uniqa.captioning.config import CaptionConfig, VLLMConfig
from uniqa.captioning.http_session import SessionFactory
from uniqa.data.images import DecodeConfig
from uniqa.errors import UniqaError
from uniqa.registry import Registry

if TYPE_CHECKING:
    from ray.data import Dataset

CAPTIONERS: Registry[Callable[[CaptionConfig], Any]] = Registry("captioner")


def create_captioner(name: str, cfg: CaptionConfig | None = None):
    """The one constructor: ``create_captioner("openai", cfg)``; an unknown name lists the known ones."""
    factory = CAPTIONERS.get(name)
    cfg = cfg if cfg is not None else CaptionConfig(backend=name)
    return factory(cfg if cfg.backend == name else dataclasses.replace(cfg, backend=name))


@CAPTIONERS.register("attributes")
class AttributesCaptioner:
    batch_size = 16

    def __init__(self, cfg: CaptionConfig):
        self.cfg, self.model = cfg, cfg.model

    def check(self) -> None:
        """What this backend needs on the driver, checked before any Ray work (nothing here)."""

    def apply(self, ds: Dataset) -> Dataset:
        from uniqa.captioning.attributes import caption_batch

        a = self.cfg.attributes
        kwargs = dict(version=self.cfg.prompt_version, prompts_file=self.cfg.prompts_file, max_side=a.max_side,
                      max_phrases=a.max_phrases, max_pixels=self.cfg.max_pixels)
        return ds.map_batches(caption_batch, fn_kwargs=kwargs, batch_format="numpy", batch_size=self.batch_size,
                              num_cpus=a.num_cpus)


# ----------------------------------------------------------------------------------- MLLM backends


def openai_preprocess(row: dict, model: str, version: str, prompts_file: str | None, max_tokens: int,
                      temperature: float) -> dict:
    messages, error = chat.row_messages(row, version, prompts_file)
    payload = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
    return {"payload": payload, chat.ERROR_KEY: error}


def openai_postprocess(row: dict) -> dict:
    caption, error = chat.parse_chat_response(row.get("http_response"))
    return {"image_id": row["image_id"], "task": row["task"], "caption": caption, "error": error}


def vllm_preprocess(row: dict, version: str, prompts_file: str | None, sampling: dict) -> dict:
    messages, error = chat.row_messages(row, version, prompts_file)
    return {"messages": messages, "sampling_params": dict(sampling), chat.ERROR_KEY: error}


def vllm_postprocess(row: dict) -> dict:
    text = " ".join(str(row.get("generated_text") or "").split())
    return {"image_id": row["image_id"], "task": row["task"], "caption": text or None,
            "error": None if text else "empty caption from the model"}


class _ProcessorCaptioner:
    """Shared wiring: encode images to data URLs -> ray.data.llm processor -> caption rows. A subclass gives
    ``processor_config()``, ``preprocess()`` (row -> request) and ``postprocess`` (response row -> caption)."""

    max_pixels: int | None = None
    jpeg_quality: int = 90
    encode_batch_size: int = 16

    def __init__(self, cfg: CaptionConfig):
        self.cfg, self.model = cfg, cfg.model

    def check(self) -> None:
        """What this backend needs on the driver, checked before any Ray work (nothing by default)."""

    def apply(self, ds: Dataset) -> Dataset:
        encode = dict(decode=DecodeConfig(max_pixels=self.cfg.max_pixels), max_pixels=self.max_pixels,
                      quality=self.jpeg_quality)
        ds = ds.map_batches(chat.encode_batch, fn_kwargs=encode, batch_format="numpy",
                            batch_size=self.encode_batch_size)
        ds = self.processor()(ds)
        finish = dict(backend=self.cfg.backend, model=self.model, version=self.cfg.prompt_version)
        return ds.map_batches(chat.caption_table, fn_kwargs=finish, batch_format="pyarrow")

    def processor(self):
        """The ray.data.llm processor: ``processor(ds)`` maps encoded rows to caption rows."""
        from ray.data.llm import build_processor

        return build_processor(self.processor_config(), preprocess=self.preprocess(), postprocess=self.postprocess)


@CAPTIONERS.register("openai")
class OpenAICaptioner(_ProcessorCaptioner):
    postprocess = staticmethod(openai_postprocess)

    def __init__(self, cfg: CaptionConfig):
        super().__init__(cfg)
        self.max_pixels, self.jpeg_quality = cfg.openai.max_pixels, cfg.openai.jpeg_quality
        self.encode_batch_size = cfg.openai.batch_size

    def headers(self) -> dict[str, str]:
        key = os.environ.get(self.cfg.openai.api_key_env, "") if self.cfg.openai.api_key_env else ""
        return {"Authorization": f"Bearer {key}"} if key else {}

    def processor_config(self):
        from ray.data.llm import HttpRequestProcessorConfig

        o = self.cfg.openai
        session = SessionFactory(timeout_s=o.timeout_s, max_retries=o.max_retries, retry_wait_s=o.retry_wait_s,
                                 max_in_flight=o.max_in_flight)
        # max_retries=0: the session retries itself and always answers (see uniqa.captioning.http_session)
        return HttpRequestProcessorConfig(url=o.url, headers=self.headers(), qps=o.qps, max_retries=0,
                                          batch_size=o.batch_size, concurrency=o.concurrency,
                                          session_factory=session)

    def preprocess(self) -> Callable[[dict], dict]:
        o = self.cfg.openai
        return partial(openai_preprocess, model=o.model, version=self.cfg.prompt_version,
                       prompts_file=self.cfg.prompts_file, max_tokens=o.max_tokens, temperature=o.temperature)


def vllm_sampling_params(v: VLLMConfig) -> dict[str, Any]:
    """vLLM ``SamplingParams`` fields sent with every request."""
    return {"temperature": v.temperature, "top_p": v.top_p, "max_tokens": v.max_tokens}


def vllm_processor_kwargs(v: VLLMConfig) -> dict[str, Any]:
    """The keyword arguments of ``vLLMEngineProcessorConfig`` built from our config."""
    engine = {
        "max_model_len": v.max_model_len,
        "limit_mm_per_prompt": {"image": v.limit_mm_per_prompt},
        "mm_processor_kwargs": {"min_pixels": v.min_pixels, "max_pixels": v.max_pixels},
        "gpu_memory_utilization": v.gpu_memory_utilization,
        "tensor_parallel_size": v.tensor_parallel_size,
        "pipeline_parallel_size": v.pipeline_parallel_size,
        "dtype": v.dtype,
        "trust_remote_code": v.trust_remote_code,
        "enable_prefix_caching": v.enable_prefix_caching,
        **v.engine_kwargs,
    }
    return {
        "model_source": v.model_source,
        "engine_kwargs": engine,
        "batch_size": v.batch_size,
        "concurrency": v.concurrency,
        "accelerator_type": v.accelerator_type,
        "max_concurrent_batches": v.max_concurrent_batches,
        "should_continue_on_error": v.should_continue_on_error,
        "prepare_multimodal_stage": {
            "enabled": True,
            "model_config_kwargs": {"trust_remote_code": v.trust_remote_code},
        },
        "chat_template_stage": True,
        "tokenize_stage": True,
        "detokenize_stage": True,
    }


VLLM_MODULES = ("vllm", "transformers")  # what building the vLLM processor imports (the uniqa[vllm] extra)


def check_vllm_installed(find=importlib.util.find_spec) -> None:
    """Fail before any Ray work, in one line, when the ``[vllm]`` extra is missing."""
    missing = [name for name in VLLM_MODULES if find(name) is None]
    if missing:
        raise UniqaError(f"backend 'vllm' needs {' and '.join(missing)} (not installed): pip install "
                         "'uniqa[vllm]' on a GPU machine; without a GPU use --backend attributes, or --backend openai "
                         "with a vLLM / SGLang server")


@CAPTIONERS.register("vllm")
class VLLMCaptioner(_ProcessorCaptioner):
    postprocess = staticmethod(vllm_postprocess)

    def __init__(self, cfg: CaptionConfig):
        super().__init__(cfg)
        self.max_pixels, self.jpeg_quality = cfg.vllm.max_pixels, cfg.vllm.jpeg_quality

    def processor_config(self):
        from ray.data.llm import vLLMEngineProcessorConfig

        return vLLMEngineProcessorConfig(**vllm_processor_kwargs(self.cfg.vllm))

    def preprocess(self) -> Callable[[dict], dict]:
        return partial(vllm_preprocess, version=self.cfg.prompt_version, prompts_file=self.cfg.prompts_file,
                       sampling=vllm_sampling_params(self.cfg.vllm))

    def check(self) -> None:
        check_vllm_installed()
