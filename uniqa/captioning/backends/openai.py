"""The ``openai`` backend: any OpenAI-compatible chat-completions endpoint (``vllm serve``, SGLang, hosted APIs)
through ``ray.data.llm.HttpRequestProcessorConfig``, with the never-raising session of
:mod:`uniqa.captioning.http_session` (HTTP errors and timeouts become error rows).

What users of real servers hit:
- the server is still loading: ``openai.wait_s`` > 0 waits (bounded) in the pre-flight until it lists the model;
- the server dies mid-run: its rows become error rows ("failed after N attempts: ..."); the next run of the same
  command forgets those rows (:func:`forget_gave_up`) and captions them again, exactly once;
- an image over the pixel budget: downscaled to ``openai.max_pixels`` before it is sent;
- a prompt over the model's context length: the server's HTTP 400 (with its reason) becomes the row's error."""

from __future__ import annotations

import os
from functools import partial

import pyarrow.compute as pc
import pyarrow.parquet as pq

from uniqa import sink, storage
from uniqa.captioning import chat
from uniqa.captioning.backends.base import LLMStep, ProcessorCaptioner, register
from uniqa.captioning.config import CaptionConfig
from uniqa.captioning.http_session import GAVE_UP, SessionFactory, wait_for_model
from uniqa.captioning.instructions import TaskPrompts
from uniqa.errors import UniqaError
from uniqa.schema import CAPTIONS


def openai_preprocess(row: dict, model: str, prompts: TaskPrompts, max_tokens: int, temperature: float) -> dict:
    messages, error = chat.row_messages(row, prompts)
    payload = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
    return {"payload": payload, chat.ERROR_KEY: error}


def openai_postprocess(row: dict) -> dict:
    caption, error = chat.parse_chat_response(row.get("http_response"))
    return {"image_id": row["image_id"], "task": row["task"], "caption": caption, "error": error}


def forget_gave_up(out: str) -> int:
    """Remove the rows under ``out`` whose requests gave up (see :func:`~uniqa.captioning.http_session.gave_up`), so
    that this run captions them again; returns how many. Each part file holding such rows is replaced by one with
    the other rows (committed first, under its own id-hash name) and then deleted. A crash in between leaves both;
    the next run's pre-flight does it again (same name) before it reads the finished ids: no row lost or doubled."""
    fs, root = storage.resolve(out)
    forgotten = 0
    for name in sink.part_names(out):
        errors = pq.read_table(f"{root}/{name}", columns=["error"], filesystem=fs)["error"]
        if not pc.any(pc.fill_null(pc.starts_with(errors, GAVE_UP), False)).as_py():
            continue  # most files: only the error column was read
        table = pq.read_table(f"{root}/{name}", filesystem=fs)
        failed = pc.fill_null(pc.starts_with(table["error"], GAVE_UP), False)
        n = int(pc.sum(failed).as_py() or 0)
        kept = table.filter(pc.invert(failed))
        if len(kept):
            sink.write_batch(kept, out, CAPTIONS)  # fewer ids: another name
        fs.delete_file(f"{root}/{name}")
        forgotten += n
    return forgotten


@register
class OpenAICaptioner(ProcessorCaptioner):
    name = "openai"

    def __init__(self, cfg: CaptionConfig):
        super().__init__(cfg)
        o = cfg.openai
        self.max_pixels, self.jpeg_quality, self.encode_batch_size = o.max_pixels, o.jpeg_quality, o.batch_size

    @property
    def model(self) -> str:
        return self.cfg.openai.model

    def check(self) -> None:
        if not self.cfg.openai.model.strip():
            raise UniqaError("backend 'openai' needs openai.model, the model name the server expects "
                             "(e.g. --set openai.model=Qwen/Qwen2.5-VL-7B-Instruct)")
        if self.cfg.openai.wait_s:
            wait_for_model(self.cfg.openai.url, self.cfg.openai.model, self.cfg.openai.wait_s, self.headers())

    def prepare_output(self, out: str) -> int:
        return forget_gave_up(out) if storage.exists(out) else 0

    def headers(self) -> dict[str, str]:
        key = os.environ.get(self.cfg.openai.api_key_env, "") if self.cfg.openai.api_key_env else ""
        return {"Authorization": f"Bearer {key}"} if key else {}

    def llm_step(self, prompts: TaskPrompts) -> LLMStep:
        o = self.cfg.openai
        session = SessionFactory(timeout_s=o.timeout_s, max_retries=o.max_retries, retry_wait_s=o.retry_wait_s,
                                 max_in_flight=o.max_in_flight)
        # max_retries=0: the session retries itself and always answers (see uniqa.captioning.http_session)
        kwargs = dict(url=o.url, headers=self.headers(), qps=o.qps, max_retries=0, batch_size=o.batch_size,
                      concurrency=o.concurrency, session_factory=session)
        preprocess = partial(openai_preprocess, model=o.model, prompts=dict(prompts), max_tokens=o.max_tokens,
                             temperature=o.temperature)
        return LLMStep("HttpRequestProcessorConfig", kwargs, preprocess, openai_postprocess)
