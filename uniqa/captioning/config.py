"""``CaptionConfig``: which captioner, which prompts, and each backend's knobs (one file drives
``uniqa caption`` and ``pipelines/caption.py`` on a cluster; see cluster/caption-vllm.yaml).

``__post_init__`` checks types and ranges only: a bad number or URL fails with one line naming the value.
What needs the registry or storage (an unknown backend, the prompt file and version, a backend's own needs)
is checked by the run's pre-flight (:func:`uniqa.captioning.run.preflight`), still before any Ray work. This
module imports no backend: the backends import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from uniqa.errors import UniqaError
from uniqa.schema import TASKS


def _positive(owner: str, **values: float | int | None) -> None:
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise UniqaError(f"{owner}.{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class AttributesConfig:
    """The offline CPU captioner (measured attributes -> sentence)."""

    max_side: int | None = 1024  # measure on the image fitted to this longer side (None: full size)
    max_phrases: int = 4  # most salient attribute phrases per caption
    num_cpus: float = 1.0  # CPUs per captioning task

    def __post_init__(self):
        _positive("attributes", max_side=self.max_side, max_phrases=self.max_phrases, num_cpus=self.num_cpus)


@dataclass(frozen=True)
class OpenAIConfig:
    """Any OpenAI-compatible chat-completions endpoint (vllm serve, SGLang, hosted APIs)."""

    url: str = "http://127.0.0.1:8000/v1/chat/completions"  # full chat-completions URL
    model: str = ""  # model name the server expects (required)
    api_key_env: str = "OPENAI_API_KEY"  # env var holding the API key ("" or unset: no Authorization header)
    qps: int | None = None  # max requests per second per worker (None: no limit)
    max_retries: int = 3  # retries of timeouts, connection errors, 408/429/5xx; then an error row
    retry_wait_s: float = 1.0  # first backoff wait, doubled after each retry
    timeout_s: float = 120.0  # per attempt
    max_in_flight: int = 16  # concurrent requests per worker
    batch_size: int = 16  # rows per request batch
    concurrency: int = 1  # HTTP workers
    max_tokens: int = 128
    temperature: float = 0.2
    max_pixels: int = 1024 * 1024  # images are downscaled to this pixel budget before sending
    jpeg_quality: int = 90
    wait_s: float = 0.0  # before the run, wait up to this long for the server to list the model (0: no check)

    def __post_init__(self):
        scheme = urlparse(self.url).scheme
        if scheme not in ("http", "https"):
            raise UniqaError(f"openai.url must be an http(s) URL, got {self.url!r}")
        _positive("openai", qps=self.qps, retry_wait_s=self.retry_wait_s, timeout_s=self.timeout_s,
                  max_in_flight=self.max_in_flight, batch_size=self.batch_size, concurrency=self.concurrency,
                  max_tokens=self.max_tokens, max_pixels=self.max_pixels)
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise UniqaError(f"openai.max_retries must be an int >= 0, got {self.max_retries!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise UniqaError(f"openai.jpeg_quality must be in 1..100, got {self.jpeg_quality!r}")
        if isinstance(self.wait_s, bool) or not isinstance(self.wait_s, (int, float)) or self.wait_s < 0:
            raise UniqaError(f"openai.wait_s must be a number of seconds >= 0, got {self.wait_s!r}")


@dataclass(frozen=True)
class VLLMConfig:
    """In-process vLLM engines on GPU actors (``ray.data.llm.vLLMEngineProcessorConfig``)."""

    model_source: str = "Qwen/Qwen2.5-VL-7B-Instruct"  # HF model id, or a local / s3:// path
    max_model_len: int = 4096
    limit_mm_per_prompt: int = 1  # images per prompt
    min_pixels: int = 256 * 28 * 28  # pixel budget of the model's image processor (Qwen2.5-VL style)
    max_pixels: int = 1280 * 28 * 28  # ... and the size images are downscaled to before encoding
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    dtype: str = "auto"
    trust_remote_code: bool = False
    enable_prefix_caching: bool = True  # the system prompt is shared by every request
    batch_size: int = 32
    concurrency: int | tuple[int, int] = 1  # engine replicas (n, or (min, max) to autoscale)
    accelerator_type: str | None = None  # e.g. "H100", "A100", "L4" (None: any GPU)
    max_concurrent_batches: int = 8
    should_continue_on_error: bool = True  # a failed row becomes an error row instead of failing the job
    temperature: float = 0.2
    top_p: float = 0.9
    max_tokens: int = 128
    jpeg_quality: int = 90
    engine_kwargs: dict[str, Any] = field(default_factory=dict)  # any other vLLM engine argument
    log_engine_metrics: bool = True  # engine metrics to Ray's Prometheus endpoint (needs ray.serve; False on CPU)
    placement_group_config: dict[str, Any] | None = None  # e.g. {"bundles": [{"CPU": 1}]} (CPU build); None: Ray's
    stage_num_cpus: float | None = None  # CPUs per multimodal / chat-template / tokenize / detokenize actor (None: 1)

    def __post_init__(self):
        if not str(self.model_source).strip():
            raise UniqaError("vllm.model_source must name a model (HF id or local/s3 path)")
        _positive("vllm", max_model_len=self.max_model_len, limit_mm_per_prompt=self.limit_mm_per_prompt,
                  min_pixels=self.min_pixels, max_pixels=self.max_pixels,
                  tensor_parallel_size=self.tensor_parallel_size, pipeline_parallel_size=self.pipeline_parallel_size,
                  batch_size=self.batch_size, max_concurrent_batches=self.max_concurrent_batches,
                  max_tokens=self.max_tokens, top_p=self.top_p, stage_num_cpus=self.stage_num_cpus)
        if not 0 < self.gpu_memory_utilization <= 1:
            raise UniqaError(f"vllm.gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization!r}")
        if self.min_pixels > self.max_pixels:
            raise UniqaError(f"vllm.min_pixels {self.min_pixels} exceeds vllm.max_pixels {self.max_pixels}")
        if self.temperature < 0:
            raise UniqaError(f"vllm.temperature must be >= 0, got {self.temperature!r}")
        if isinstance(self.concurrency, list):
            object.__setattr__(self, "concurrency", tuple(self.concurrency))
        if isinstance(self.concurrency, tuple):
            if len(self.concurrency) != 2 or not 1 <= self.concurrency[0] <= self.concurrency[1]:
                raise UniqaError(f"vllm.concurrency must be n or (min, max) with 1 <= min <= max, "
                                 f"got {self.concurrency!r}")
        else:
            _positive("vllm", concurrency=self.concurrency)


@dataclass(frozen=True)
class CaptionConfig:
    backend: str = "attributes"  # attributes | openai | vllm (see uniqa.captioning.backends.CAPTIONERS)
    prompt_version: str = "v1"  # version in the prompt file, recorded on every caption row
    prompts_file: str | None = None  # another prompt file (local or s3://); None: the packaged prompts.yaml
    tasks: tuple[str, ...] = TASKS  # caption only manifest rows of these tasks
    limit: int | None = None  # caption at most this many not-yet-captioned images in this run (then rerun)
    rows_per_block: int | None = None  # rows per Ray Data block, the unit of parallel work (None: the backend's)
    rows_per_file: int = 1000  # rows per output Parquet file: the unit of resume (a killed run loses < one file)
    max_pixels: int = 120_000_000  # decompression-bomb limit per image
    attributes: AttributesConfig = AttributesConfig()
    openai: OpenAIConfig = OpenAIConfig()
    vllm: VLLMConfig = VLLMConfig()

    def __post_init__(self):
        for name in ("backend", "prompt_version"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise UniqaError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        if self.prompts_file is not None and (not isinstance(self.prompts_file, str) or not self.prompts_file):
            raise UniqaError(f"prompts_file must be a path (local or s3://) or null, got {self.prompts_file!r}")
        if isinstance(self.tasks, (list, str)):
            object.__setattr__(self, "tasks", (self.tasks,) if isinstance(self.tasks, str) else tuple(self.tasks))
        wrong = [t for t in self.tasks if t not in TASKS]
        if wrong or not self.tasks:
            raise UniqaError(f"tasks has {wrong or 'nothing'}; valid tasks: {list(TASKS)}")
        _positive("caption", limit=self.limit, rows_per_block=self.rows_per_block, rows_per_file=self.rows_per_file,
                  max_pixels=self.max_pixels)
