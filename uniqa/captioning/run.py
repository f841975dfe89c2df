"""``run_caption``: manifest -> caption Parquet files under ``out``, resumable and exactly-once.

The pre-flight (:func:`preflight`, before any Ray work) checks the backend and its needs, reads the prompts and
the manifest's columns and ids. The work (:func:`work`) counts what ``out`` already holds; the job
(:mod:`.caption_stage`) captions only the manifest rows of the configured tasks whose ids are not under ``out``
yet and commits every ``rows_per_file`` rows as one Parquet file (:mod:`uniqa.sink`). A rerun of the same
command (after a crash, SIGKILL, Ctrl-C or a ``limit``) captions only what is missing; the run identity
(``out/_run.json``, checked by :func:`uniqa.executor.execute`) makes sure a rerun uses the same backend, model
and prompt version.
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
from uniqa.stage import Outcome, Plan, Run, StageSummary
from uniqa.tables import column_chunks, dataset_schema, id_hashes, parquet_files


@dataclass(kw_only=True)
class CaptionPlan(Plan):
    """What the pre-flight found: everything the job needs."""

    captioner: Captioner
    prompts: dict[str, Prompt]  # task -> its prompt at cfg.prompt_version
    files: list[str]  # the manifest's Parquet files
    rows_in: int  # manifest rows of the configured tasks


def task_ids(files: list[str], tasks: tuple[str, ...]) -> Iterator[pa.ChunkedArray]:
    """The ids of the manifest rows of ``tasks``, in chunks (:func:`uniqa.tables.column_chunks`; only the id and
    task columns are read)."""
    return column_chunks(files, "image_id", filter=pads.field("task").isin(list(tasks)))


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


def preflight(manifest: str, out: str, cfg: CaptionConfig) -> CaptionPlan:
    """Every check before Ray, failing with one :class:`UniqaError`: the backend (name, its own needs), the prompt
    file and version, the manifest (files, columns, unique ids) and ``out`` (a folder). The identity: backend,
    model and prompts (``OUT/_run.json``)."""
    captioner = create_captioner(cfg)
    captioner.check()  # e.g. the [vllm] extra, before the backend is pinned on the output folder
    prompts = task_prompts(cfg.prompt_version, cfg.tasks, cfg.prompts_file)
    files = parquet_files(manifest)
    MANIFEST.check_columns(dataset_schema(files), manifest)
    rows = manifest_rows(files, cfg.tasks, f"manifest {manifest}")
    if storage.exists(out) and not storage.is_dir(out):
        raise UniqaError(f"--out {out} is a file; captions are written as a folder of Parquet files")
    identity = {"backend": captioner.name, "model": captioner.model, "prompt_version": cfg.prompt_version,
                "prompts_file": cfg.prompts_file}
    return CaptionPlan(inputs={"manifest": manifest}, identity=identity, captioner=captioner, prompts=prompts,
                       files=files, rows_in=rows)


def work(plan: CaptionPlan, out: str, cfg: CaptionConfig, run: Run) -> Outcome:
    """Caption the manifest's images (of ``cfg.tasks``) not yet captioned under ``out``: a killed run's leftovers
    are cleaned and the rows still to caption counted first (none: no Ray job). Incomplete (exit 1) while rows
    are missing, e.g. after a ``limit``."""
    sink.clean_temporaries(out)
    plan.captioner.prepare_output(out)  # e.g. rows whose server was down: captioned again by this run
    state = sink.output_state(out)
    done = sum(sink.count_done(ids, state.ids) for ids in task_ids(plan.files, cfg.tasks)) if len(state.ids) else 0
    todo = min(plan.rows_in - done, cfg.limit) if cfg.limit else plan.rows_in - done
    written = sink.SinkSummary()
    if todo:
        from uniqa.captioning.caption_stage import caption_job

        with run.ray():
            job = caption_job(plan.files, out, state.ids, plan.captioner, plan.prompts, cfg, todo)
            written = sink.drain(job, total=todo, desc=f"captions ({plan.captioner.name})", progress=run.progress)
        sink.settle(out, state.files, written.file_names)
    return Outcome(
        rows_in=plan.rows_in, rows_out=done + written.rows_written, rows_written=written.rows_written,
        rows_with_errors=written.errors, already_done=done, unit="images",
        details={"backend": plan.captioner.name, "model": plan.captioner.model, "prompt_version": cfg.prompt_version,
                 "tasks": list(cfg.tasks), "files_written": written.files},
    )


def run_caption(manifest: str, out: str, cfg: CaptionConfig, *, progress: bool = True,
                address: str | None = None) -> StageSummary:
    """Caption the manifest's images (of ``cfg.tasks``) into ``out`` (:func:`uniqa.executor.execute` of this
    stage); a rerun continues where ``out`` left off."""
    from uniqa.executor import execute

    return execute("caption", [manifest], out, cfg, progress=progress, address=address)
