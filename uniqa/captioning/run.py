"""``run_caption``: manifest -> caption Parquet files under ``out``, resumable and exactly-once.

Steps (each a Ray Data operator, streamed): read the manifest's id/uri/task/level columns -> drop the
rows of other tasks and the ids already captioned under ``out`` -> [limit] -> blocks of ``rows_per_block``
rows -> captioner backend -> commit each ``rows_per_file`` rows as one Parquet file (:mod:`uniqa.sink`).
A rerun of the same command (after a crash, SIGKILL, Ctrl-C or a ``limit``) captions only what is
missing; ``out/_run.json`` makes sure a rerun uses the same backend, model and prompt version.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from uniqa import sink, storage
from uniqa.captioning.backends import create_captioner
from uniqa.captioning.config import CaptionConfig
from uniqa.captioning.outputs import check_run_identity, dataset_schema, drain_user_errors
from uniqa.errors import UniqaError
from uniqa.schema import CAPTIONS, MANIFEST
from uniqa.tables import parquet_files

COLUMNS = ["image_id", "image_uri", "task", "level"]


def pending_rows(batch: pa.Table, tasks: tuple[str, ...], done: pa.Array) -> pa.Table:
    """The rows of ``batch`` still to caption: task in ``tasks`` and id not in ``done`` (ids, built once)."""
    batch = batch.filter(pc.is_in(batch["task"], value_set=pa.array(list(tasks), pa.string())))
    return sink.drop_ids(batch, done)


def count_pending(files: list[str], tasks: tuple[str, ...], done: set[str]) -> tuple[int, int]:
    """(rows to caption, rows of these tasks already captioned), reading only the id and task columns."""
    fs, _ = storage.resolve(files[0])
    table = pads.dataset([storage.resolve(f)[1] for f in files], format="parquet", filesystem=fs).to_table(
        columns=["image_id", "task"])
    table = table.filter(pc.is_in(table["task"], value_set=pa.array(list(tasks), pa.string())))
    if pc.count_distinct(table["image_id"]).as_py() != len(table):
        counts = pc.value_counts(table["image_id"])
        dup = counts.filter(pc.greater(counts.field("counts"), 1))[0]["values"].as_py()
        raise UniqaError(f"manifest lists image_id {dup!r} more than once; captions are keyed by image_id")
    finished = int(pc.sum(pc.is_in(table["image_id"], value_set=pa.array(list(done), pa.string()))).as_py() or 0)
    return len(table) - finished, finished


def prepare(manifest: str, out: str, cfg: CaptionConfig) -> tuple[list[str], sink.OutputState, int, int]:
    """Every check before Ray: inputs, run identity, leftovers; returns (files, what out holds, to do, skipped)."""
    files = parquet_files(manifest)
    MANIFEST.check_columns(dataset_schema(files), manifest)
    if storage.exists(out) and not storage.is_dir(out):
        raise UniqaError(f"--out {out} is a file; captions are written as a folder of Parquet files")
    check_run_identity(out, {"backend": cfg.backend, "model": cfg.model, "prompt_version": cfg.prompt_version,
                             "prompts_file": cfg.prompts_file})
    sink.clean_temporaries(out)
    state = sink.output_state(out)
    todo, skipped = count_pending(files, cfg.tasks, state.ids)
    return files, state, min(todo, cfg.limit) if cfg.limit else todo, skipped


def caption_dataset(files: list[str], out: str, done: set[str], captioner, cfg: CaptionConfig):
    """The Ray Data job: manifest columns -> pending rows -> [limit] -> small blocks -> captioner -> committed
    files; yields one count row per file (see :func:`uniqa.sink.write_batch`)."""
    import ray

    fs, _ = storage.resolve(files[0])
    ds = ray.data.read_parquet([storage.resolve(f)[1] for f in files], filesystem=fs).select_columns(COLUMNS)
    ds = ds.map_batches(pending_rows, fn_kwargs={"tasks": cfg.tasks, "done": sink.id_array(done)},
                        batch_format="pyarrow", batch_size=None)
    if cfg.limit:
        ds = ds.limit(cfg.limit)
    # Small blocks: captioning runs as many tasks side by side, and files are committed as blocks finish (a read
    # block holds a whole manifest file: without this, nothing would be written before all of it was captioned).
    ds = captioner.apply(ds.repartition(target_num_rows_per_block=cfg.rows_per_block))
    # Writing is light I/O: with no CPU reserved it is never starved by captioning tasks holding every CPU.
    return ds.map_batches(sink.write_batch, fn_kwargs={"out": out, "schema": CAPTIONS}, batch_format="pyarrow",
                          batch_size=cfg.rows_per_file, num_cpus=0)


def run_caption(manifest: str, out: str, cfg: CaptionConfig = CaptionConfig()) -> dict:
    """Caption the manifest's images not yet captioned under ``out``; returns the run's summary (rows_in,
    rows_out, errors, already_done, rows_per_second, ...), also written to ``out/_summary.json``."""
    from uniqa.runtime import init_ray, quiet_ray_data

    captioner = create_captioner(cfg.backend, cfg)
    captioner.check()  # e.g. the [vllm] extra, before prepare() pins the backend on the output folder
    files, state, todo, skipped = prepare(manifest, out, cfg)
    if todo == 0:  # everything captioned already: no Ray job
        return write_summary(out, cfg, 0, sink.SinkSummary(skipped=skipped))
    init_ray()
    quiet_ray_data(quiet=not cfg.progress)
    results = caption_dataset(files, out, state.ids, captioner, cfg)
    summary = drain_user_errors(sink.drain, results, total=todo, desc=f"captions ({cfg.backend})",
                                progress=cfg.progress)
    sink.settle(out, state.files, summary.file_names)
    summary.skipped = skipped
    return write_summary(out, cfg, todo, summary)


def write_summary(out: str, cfg: CaptionConfig, rows_in: int, summary: sink.SinkSummary) -> dict:
    record = {"out": out, "rows_in": rows_in, "rows_out": summary.rows_written, "errors": summary.errors,
              "already_done": summary.skipped, "files": summary.files, "seconds": round(summary.seconds, 2),
              "rows_per_second": round(summary.rows_per_second, 2), "backend": cfg.backend, "model": cfg.model,
              "prompt_version": cfg.prompt_version}
    storage.write_bytes(storage.join(out, "_summary.json"), json.dumps(record, indent=2).encode())
    return record


def summary_lines(s: dict) -> list[str]:
    """The closing summary printed by the CLI."""
    lines = [f"rows in {s['rows_in']}, rows out {s['rows_out']}, errors {s['errors']}, already captioned "
             f"{s['already_done']}, {s['rows_per_second']:.1f} rows/s, {s['seconds']:.1f} s -> {s['out']}"]
    if s["rows_in"] != s["rows_out"]:
        lines.append(f"warning: {s['rows_in'] - s['rows_out']} rows were not written; rerun the same command "
                     "to caption them")
    return lines
