"""The scoring job: input -> skip finished ids -> blocks -> decode + views -> model actors -> Parquet.

Streaming end to end (a manifest is read by Ray, never held by the driver); exactly-once and resumable
through :mod:`uniqa.sink` (a rerun after a crash skips every image already written and duplicates none). A
manifest's ``decode_size`` column (SPAQ: 448) sets each row's decode size unless the config sets one for all.
The pre-flight (:func:`preflight`, no Ray, nothing written) checks the config, the input and the model once; the
run identity is the model checksum (model, heads, views, decode sizes), pinned in ``OUT/_run.json`` so that a
rerun with other settings is refused (:func:`uniqa.executor.execute`) instead of mixing scores. The work
(:func:`work`) cleans a killed run's leftovers and counts what is left (nothing: no Ray job).
``uniqa score`` and ``pipelines/score.py`` both call :func:`run_score`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import pyarrow as pa
import pyarrow.parquet as pq

from uniqa import sink, storage
from uniqa.data.images import DECODE_SIZE_COLUMN, decode_key, manifest_decode_sizes
from uniqa.errors import UniqaError
from uniqa.runtime import policy_threads
from uniqa.schema import scores_schema
from uniqa.scoring import inputs
from uniqa.scoring.config import ScoreConfig
from uniqa.scoring.config import preflight as check_config
from uniqa.scoring.fingerprint import fingerprint
from uniqa.scoring.inputs import ID_SCHEMA, ScoreInput, resolve_input
from uniqa.stage import RUN_FILE, Outcome, Plan, Run, StageSummary
from uniqa.tables import column_chunks, ray_read

LISTING_PAGE = 10_000  # names per block of a folder's listing (one block: one drop-finished-ids filter)


@dataclass(kw_only=True)
class ScorePlan(Plan):
    """What the pre-flight found: everything the job needs."""

    cfg: ScoreConfig  # resolved (model, weights, image size, pos_embedding): what the model actors get, unchecked
    inp: ScoreInput
    row_sizes: list[int | None]  # the manifest's distinct decode sizes when they matter (row_decode_sizes)
    checksum: str  # of the model, heads, views and decode sizes (the run identity)
    schema: pa.Schema  # of the scores


def read_input(inp: ScoreInput, per_row_decode: bool = False):
    """A Ray dataset of ``image_id, image_uri`` (a manifest is streamed from its shards, a folder from its
    listing, page by page), and the manifest's ``decode_size`` with ``per_row_decode``."""
    import ray

    if inp.kind == "manifest":
        extra = [DECODE_SIZE_COLUMN] if per_row_decode else []
        return ray_read(inp.files, columns=["image_id", "image_uri", *extra])
    if inp.table is None:  # a large image folder or list file
        return ray.data.read_datasource(streamed(inp, LISTING_PAGE), override_num_blocks=1)
    return ray.data.from_arrow(inp.table)


def streamed(inp: ScoreInput, page_size: int = LISTING_PAGE):
    """A Ray datasource with one read task that lists a large image folder or reads a long list file and yields
    each page as a block as soon as it has it (:func:`uniqa.scoring.inputs.pages`): scoring starts on the first
    page while the rest is still being listed, and neither the driver nor the task holds the whole listing."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class StreamedInput(Datasource):
        def estimate_inmemory_data_size(self):
            return None

        def supports_distributed_reads(self) -> bool:
            return storage.is_s3(inp.uri)  # a local folder or file is read on the node that checked it

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            meta = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=None)
            return [ReadTask(lambda: inputs.pages(inp, page_size), meta, schema=ID_SCHEMA)]

    return StreamedInput()


def row_decode_sizes(inp: ScoreInput, cfg: ScoreConfig) -> list[int | None]:
    """The input manifest's distinct decode sizes when they matter (no ``decode_size`` in ``cfg``); else [None]."""
    if inp.kind != "manifest" or cfg.decode_size is not None:
        return [None]
    return manifest_decode_sizes(list(inp.files))


def output_rows(out: str) -> int:
    """Rows in the finished part files of ``out`` (footers only)."""
    fs, root = storage.resolve(out)
    return sum(pq.read_metadata(f"{root}/{name}", filesystem=fs).num_rows for name in sink.part_names(out))


def check_unpinned(out: str, checksum: str) -> None:
    """An output written before run identities were pinned (no ``OUT/_run.json``) is checked by the checksum its
    first part file holds: scores of another model, heads or views are refused there too (read only)."""
    parts = sink.part_names(out) if not storage.exists(storage.join(out, RUN_FILE)) else []
    if not parts:
        return
    fs, root = storage.resolve(out)
    found = pq.read_table(f"{root}/{parts[0]}", filesystem=fs, columns=["model_checksum"])["model_checksum"]
    if len(found) and found[0].as_py() != checksum:
        raise UniqaError(f"{out} holds output made with model_checksum={found[0].as_py()!r}, this run has "
                         f"model_checksum={checksum!r}; resume with the same settings or use another --out")


def _score_rows(inp, done, cfg, out, checksum, schema, todo, run: Run, per_row) -> sink.SinkSummary:
    """Build and drain the Ray Data job (see the module docstring), in the run's Ray session."""
    with run.ray():
        return sink.drain(_score_job(inp, done, cfg, out, checksum, schema, todo, per_row), todo, desc="scoring",
                          progress=run.progress)


def _score_job(inp, done, cfg, out, checksum, schema, todo, per_row):
    from uniqa.scoring.score_stage import add_score_stages

    ds = read_input(inp, per_row)
    if inp.table is None:  # also with nothing finished (rows pass through): Ray then fuses the read, the block
        # sizing and the decode into one task; a bare read before the sizing stays an operator of its own, and at
        # 1,000 manifest files (1M images) the first scores were written after 168 s instead of ~25 s
        ds = ds.map_batches(sink.drop_ids, fn_kwargs={"ids": done}, batch_format="pyarrow",
                            batch_size=None)
    ds = ds.repartition(target_num_rows_per_block=cfg.block_rows(cfg.image_size, None if callable(todo) else todo))
    ds = add_score_stages(ds, cfg, checksum)
    # Writing a file of scores is light I/O: with no CPU reserved it is never starved by decode tasks holding every
    # CPU, so files (the unit of resume) land as batches finish instead of all at the end.
    return ds.map_batches(sink.write_batch, fn_kwargs={"out": out, "schema": schema}, batch_format="pyarrow",
                          batch_size=cfg.rows_per_file, num_cpus=0)


def preflight(input_uri: str, out: str, cfg: ScoreConfig) -> ScorePlan:
    """Every check before Ray, failing with one :class:`~uniqa.errors.UniqaError`, once, here: the config (model,
    weights, trained heads, image size; see :func:`uniqa.scoring.config.preflight`) and the input; the model
    actors get the resolved config and its checksum and check nothing again. The identity: the model checksum
    (``OUT/_run.json``): scores of other models, heads or views are never mixed in one output."""
    resolved = check_config(cfg)
    inp = resolve_input(input_uri, resolved.input_format)
    row_sizes = row_decode_sizes(inp, resolved)
    checksum = fingerprint(resolved, row_sizes)
    schema = scores_schema(resolved.head_names, resolved.embeddings, raw=[s.name for s in resolved.classic_heads])
    check_unpinned(out, checksum)
    return ScorePlan(inputs={"input": inp.uri, "input_kind": inp.kind}, identity={"model_checksum": checksum},
                     cfg=resolved, inp=inp, row_sizes=row_sizes, checksum=checksum, schema=schema)


def work(plan: ScorePlan, out: str, cfg: ScoreConfig, run: Run) -> Outcome:
    """Score every image of the input not yet under ``out``: a killed run's leftovers are cleaned first and what
    is left counted (nothing: no Ray job), except for a large folder or list scored from scratch, which is
    counted while Ray lists and scores it."""
    cfg, inp, checksum, schema = plan.cfg, plan.inp, plan.checksum, plan.schema  # the config as resolved
    sink.clean_temporaries(out)
    before = sink.output_state(out)
    done = before.ids
    per_row = any(size is not None for size in plan.row_sizes)
    written = None
    if inp.kind != "manifest" and inp.table is None and not len(done):  # listed by Ray, counted here meanwhile
        with ThreadPoolExecutor(1) as pool:
            counted = pool.submit(inputs.count, inp, LISTING_PAGE)

            def todo() -> int | None:  # the progress bar's total, once counted
                return counted.result().rows if counted.done() else None

            written = _score_rows(inp, done, cfg, out, checksum, schema, todo, run, per_row)
            inp = replace(inp, rows=counted.result().rows, duplicates=counted.result().duplicates)
    else:
        if inp.table is not None:  # a list file or small folder is in memory: drop finished ids here, exactly
            inp = replace(inp, table=sink.drop_ids(inp.table, done))
            todo = len(inp.table)
        elif inp.kind != "manifest":  # a resume of a large folder / list: counted first (nothing left: no Ray job)
            counted = inputs.count(inp, LISTING_PAGE, done)
            inp, todo = replace(inp, rows=counted.rows, duplicates=counted.duplicates), counted.todo()
        else:  # a manifest: on a resume, its id column tells exactly what is left (nothing: no Ray job)
            ids = column_chunks(list(inp.files)) if len(done) else []
            todo = inp.rows - sum(sink.count_done(chunk, done) for chunk in ids)  # chunk by chunk
        if todo:
            written = _score_rows(inp, done, cfg, out, checksum, schema, todo, run, per_row)
    if written:
        sink.settle(out, before.files, written.file_names)
    return Outcome(
        rows_in=inp.rows, rows_out=output_rows(out), rows_written=written.rows_written if written else 0,
        rows_with_errors=written.errors if written else 0, already_done=len(done), unit="images",
        details={"model_checksum": checksum, "model": cfg.model, "pretrained": cfg.pretrained,  # the leak guard's
                 "decode": decode_key(cfg.decode_size, plan.row_sizes), "pos_embedding": cfg.pos_embedding,
                 "duplicates_in_input": inp.duplicates,
                 "threads": policy_threads(cfg.threads, cpus=cfg.num_cpus)},  # per CPU model actor
    )


def run_score(
    input_uri: str, out: str, cfg: ScoreConfig, *, progress: bool = True, address: str | None = None
) -> StageSummary:
    """Score every image of ``input_uri`` into ``out`` (local or ``s3://``; :func:`uniqa.executor.execute` of
    this stage); resumes where ``out`` left off."""
    from uniqa.executor import execute

    return execute("score", [input_uri], out, cfg, progress=progress, address=address)
