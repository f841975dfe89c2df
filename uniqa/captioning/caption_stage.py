"""The Ray Data job of captioning (the only Ray wiring of the stage): manifest columns -> pending rows ->
[limit] -> small blocks -> the backend's steps -> committed Parquet files.

The backends (:mod:`uniqa.captioning.backends`) describe their work as steps; this module applies them
(``map_batches`` for a :class:`MapStep`, a ``ray.data.llm`` processor for an :class:`LLMStep`).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from uniqa import sink
from uniqa.captioning.backends import Captioner, LLMStep, MapStep, Step
from uniqa.captioning.config import CaptionConfig
from uniqa.captioning.instructions import TaskPrompts
from uniqa.runtime import block_rows
from uniqa.schema import CAPTIONS
from uniqa.tables import ray_read

COLUMNS = ["image_id", "image_uri", "task", "level"]


def pending_rows(batch: pa.Table, tasks: tuple[str, ...], done: pa.Array) -> pa.Table:
    """The rows of ``batch`` still to caption: task in ``tasks`` and id not in ``done`` (ids, built once)."""
    batch = batch.filter(pc.is_in(batch["task"], value_set=pa.array(list(tasks), pa.string())))
    return sink.drop_ids(batch, done)


def processor_config(step: LLMStep):
    """The ``ray.data.llm`` processor config an :class:`LLMStep` names, built from its kwargs."""
    import ray.data.llm

    return getattr(ray.data.llm, step.config)(**step.kwargs)


def apply_step(ds, step: Step):
    """One backend step on a Ray dataset."""
    if isinstance(step, LLMStep):
        from ray.data.llm import build_processor

        return build_processor(processor_config(step), preprocess=step.preprocess, postprocess=step.postprocess)(ds)
    assert isinstance(step, MapStep), step
    return ds.map_batches(step.fn, fn_kwargs=step.kwargs, batch_format=step.batch_format, batch_size=step.batch_size,
                          num_cpus=step.num_cpus)


def caption_job(files: list[str], out: str, done: pa.Array, captioner: Captioner, prompts: TaskPrompts,
                cfg: CaptionConfig, todo: int | None = None):
    """The whole job as a lazy Ray dataset yielding one count row per committed file
    (see :func:`uniqa.sink.write_batch`; drain it with :func:`uniqa.sink.drain`); ``todo``: the rows to caption,
    which bounds the number of blocks (:func:`uniqa.runtime.block_rows`)."""
    ds = ray_read(files, columns=COLUMNS)
    ds = ds.map_batches(pending_rows, fn_kwargs={"tasks": cfg.tasks, "done": done},
                        batch_format="pyarrow", batch_size=None)
    if cfg.limit:
        ds = ds.limit(cfg.limit)
    # Blocks of the backend's size (attributes: two per CPU slot, LLMs: 64 rows): captioning runs as many tasks side
    # by side, and files are committed as blocks finish (a read block holds a whole manifest file: without this,
    # nothing would be written before all of it was captioned).
    import ray

    rows = cfg.rows_per_block or captioner.block_rows(todo, ray.cluster_resources().get("CPU", 1.0))
    ds = ds.repartition(target_num_rows_per_block=block_rows(rows, todo))
    for step in captioner.steps(prompts):
        ds = apply_step(ds, step)
    # Writing is light I/O: with no CPU reserved it is never starved by captioning tasks holding every CPU.
    return ds.map_batches(sink.write_batch, fn_kwargs={"out": out, "schema": CAPTIONS}, batch_format="pyarrow",
                          batch_size=cfg.rows_per_file, num_cpus=0)
