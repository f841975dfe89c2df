"""``run_caption``: manifest -> caption Parquet files under ``out``, resumable and exactly-once.

The pre-flight (:func:`preflight`, before any Ray work) checks the backend and its needs, reads the prompts,
the manifest's columns and ids, and what ``out`` already holds. The job (:mod:`.caption_stage`) captions only
the manifest rows of the configured tasks whose ids are not under ``out`` yet and commits every
``rows_per_file`` rows as one Parquet file (:mod:`uniqa.sink`). A rerun of the same command (after a crash,
SIGKILL, Ctrl-C or a ``limit``) captions only what is missing; ``out/_run.json`` makes sure a rerun uses the
same backend, model and prompt version.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from uniqa import sink, storage
from uniqa.captioning.backends import Captioner, create_captioner
from uniqa.captioning.config import CaptionConfig
from uniqa.captioning.instructions import Prompt, task_prompts
from uniqa.errors import UniqaError
from uniqa.schema import MANIFEST, check_unique
from uniqa.stage import StageSummary, config_fingerprint
from uniqa.tables import dataset, dataset_schema, id_hashes, parquet_files


@dataclass(frozen=True)
class Plan:
    """What the pre-flight found: the work to do, and everything the job needs."""

    captioner: Captioner
    prompts: dict[str, Prompt]  # task -> its prompt at cfg.prompt_version
    files: list[str]  # the manifest's Parquet files
    state: sink.OutputState  # what ``out`` held before this run
    rows_in: int  # manifest rows of the configured tasks
    already_done: int  # ... of them captioned under ``out`` before this run
    todo: int  # rows this run captions (at most ``limit``)


def task_ids(files: list[str], tasks: tuple[str, ...], chunk_rows: int = 1 << 17) -> Iterator[pa.ChunkedArray]:
    """The ids of the manifest rows of ``tasks`` in chunks of about ``chunk_rows`` (only the id and task columns
    are read). Chunks, not the files' own batches: counting the finished ids builds a lookup set of them per chunk
    (:func:`uniqa.sink.count_done`), which at a million ids and 1,000-row files took 146 s a rerun."""
    pending, size = [], 0
    for batch in dataset(files).to_batches(columns=["image_id"], filter=pads.field("task").isin(list(tasks)),
                                           batch_size=1 << 16):
        pending.append(batch.column(0))
        size += len(batch)
        if size >= chunk_rows:
            yield pa.chunked_array(pending)
            pending, size = [], 0
    if pending:
        yield pa.chunked_array(pending)


def manifest_rows(files: list[str], tasks: tuple[str, ...], where: str = "manifest") -> int:
    """The manifest rows of ``tasks``; an id listed twice fails (captions are keyed by ``image_id``). Holds 8 bytes
    an id (its 64-bit hash); ids whose hashes repeat are read again, and a real duplicate is named."""
    hashes = [id_hashes(ids.to_pylist()) for ids in task_ids(files, tasks)]
    values, counts = np.unique(np.concatenate(hashes) if hashes else np.empty(0, np.int64), return_counts=True)
    if (counts > 1).any():
        repeated = set(values[counts > 1].tolist())
        twice = [i for ids in task_ids(files, tasks) for i in ids.to_pylist() if hash(i) in repeated]
        check_unique(pa.array(twice, pa.string()), f"{where} (captions are keyed by image_id)")
    return int(counts.sum())


def preflight(manifest: str, out: str, cfg: CaptionConfig) -> Plan:
    """Every check before Ray, failing with one :class:`UniqaError`: the backend (name, its own needs), the prompt
    file and version, the manifest (files, columns, unique ids), ``out`` (a folder, same run identity); then the
    leftovers of a killed run are cleaned and the rows still to caption counted."""
    captioner = create_captioner(cfg)
    captioner.check()  # e.g. the [vllm] extra, before the backend is pinned on the output folder
    prompts = task_prompts(cfg.prompt_version, cfg.tasks, cfg.prompts_file)
    files = parquet_files(manifest)
    MANIFEST.check_columns(dataset_schema(files), manifest)
    rows = manifest_rows(files, cfg.tasks, f"manifest {manifest}")
    if storage.exists(out) and not storage.is_dir(out):
        raise UniqaError(f"--out {out} is a file; captions are written as a folder of Parquet files")
    sink.check_run_identity(out, {"backend": captioner.name, "model": captioner.model,
                                  "prompt_version": cfg.prompt_version, "prompts_file": cfg.prompts_file})
    sink.clean_temporaries(out)
    captioner.prepare_output(out)  # e.g. rows whose server was down: captioned again by this run
    state = sink.output_state(out)
    done = sum(sink.count_done(ids, state.ids) for ids in task_ids(files, cfg.tasks)) if len(state.ids) else 0
    todo = rows - done
    return Plan(captioner, prompts, files, state, rows, done, min(todo, cfg.limit) if cfg.limit else todo)


def run_caption(manifest: str, out: str, cfg: CaptionConfig, *, progress: bool = True,
                address: str | None = None) -> StageSummary:
    """Caption the manifest's images (of ``cfg.tasks``) not yet captioned under ``out``; joins the Ray cluster at
    ``address`` (default: ``$RAY_ADDRESS``, else a local Ray). Returns the summary, also written to
    ``out/_summary.json``; it is incomplete (exit 1) while rows are missing, e.g. after a ``limit``."""
    plan = preflight(manifest, out, cfg)
    written = sink.SinkSummary()
    if plan.todo:  # otherwise everything is captioned already: no Ray job
        from uniqa.captioning.caption_stage import caption_job
        from uniqa.runtime import ray_work

        with ray_work(address, progress):
            job = caption_job(plan.files, out, plan.state.ids, plan.captioner, plan.prompts, cfg, plan.todo)
            written = sink.drain(job, total=plan.todo, desc=f"captions ({plan.captioner.name})",
                                 progress=progress)
        sink.settle(out, plan.state.files, written.file_names)
    return StageSummary(
        stage="caption", inputs={"manifest": manifest}, output=out, rows_in=plan.rows_in,
        rows_out=plan.already_done + written.rows_written, rows_written=written.rows_written,
        rows_with_errors=written.errors, already_done=plan.already_done, seconds=written.seconds, unit="images",
        config_fingerprint=config_fingerprint(cfg),
        details={"backend": plan.captioner.name, "model": plan.captioner.model, "prompt_version": cfg.prompt_version,
                 "tasks": list(cfg.tasks), "files_written": written.files},
    ).write()
