"""The scoring job: input -> skip finished ids -> blocks -> decode + views -> model actors -> Parquet.

Streaming end to end (a manifest is read by Ray, never held by the driver); exactly-once and resumable
through :mod:`uniqa.sink` (a rerun after a crash skips every image already written and duplicates none).
``uniqa score`` and ``pipelines/score.py`` both call :func:`run_score`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import pyarrow.parquet as pq

from uniqa import sink, storage
from uniqa.errors import UniqaError
from uniqa.schema import scores_schema
from uniqa.scoring.config import ScoreConfig, fingerprint
from uniqa.scoring.inputs import ScoreInput, resolve_input

SUMMARY_FILE = "_score_summary.json"


@dataclass
class ScoreSummary:
    input: str
    out: str
    input_kind: str
    input_rows: int | None  # unique images in the input (None: unknown)
    already_done: int  # rows the output held before this run
    rows_written: int  # rows written by this run
    errors: int  # of those, rows with an error (null scores)
    output_rows: int  # rows in the output after this run
    seconds: float  # of the Ray job (model loading included, Ray start-up not)
    model_checksum: str
    duplicates_in_input: int = 0

    @property
    def images_per_second(self) -> float:
        return self.rows_written / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        return self.input_rows is not None and self.output_rows == self.input_rows

    def line(self) -> str:
        rows_in = "?" if self.input_rows is None else self.input_rows
        state = "complete" if self.complete else "INCOMPLETE" if self.input_rows is not None else "unchecked"
        return (
            f"scored {self.rows_written} images ({self.errors} with errors) in {self.seconds:.1f} s = "
            f"{self.images_per_second:.1f} images/s; {self.already_done} already done; "
            f"rows out {self.output_rows} / rows in {rows_in} ({state}) -> {self.out}"
        )


def read_input(inp: ScoreInput):
    """A Ray dataset of ``image_id, image_uri`` (a manifest is streamed from its shards)."""
    import ray

    if inp.kind == "manifest":
        fs, _ = storage.resolve(inp.uri)
        paths = [storage.resolve(f)[1] for f in inp.files]
        # The shards are known (resolve_input listed them): Ray's V1 Parquet reader reads them straight away,
        # where the V2 one first lists them again in extra tasks (seconds of start-up on a small machine).
        context = ray.data.DataContext.get_current()
        v2, context.use_datasource_v2 = context.use_datasource_v2, False
        try:
            return ray.data.read_parquet(paths, filesystem=fs, columns=["image_id", "image_uri"])
        finally:
            context.use_datasource_v2 = v2
    return ray.data.from_arrow(inp.table)


def output_rows(out: str) -> int:
    """Rows in the finished part files of ``out`` (footers only)."""
    fs, root = storage.resolve(out)
    return sum(pq.read_metadata(f"{root}/{name}", filesystem=fs).num_rows for name in sink.part_names(out))


def check_resumable(out: str, checksum: str) -> None:
    """Refuse to add rows to an output written with another model / heads / views (mixed scores)."""
    parts = sink.part_names(out)
    if not parts:
        return
    fs, root = storage.resolve(out)
    table = pq.read_table(f"{root}/{parts[0]}", filesystem=fs, columns=["model_checksum"])
    found = table["model_checksum"][0].as_py() if len(table) else checksum
    if found != checksum:
        raise UniqaError(
            f"{out} already holds scores with model_checksum {found}, but this run's model, heads and views give "
            f"{checksum}; write to a new --out, or rerun with the settings of the first run to resume it"
        )


def _score_rows(inp, done, cfg, out, checksum, schema, todo, progress, address) -> sink.SinkSummary:
    """Build and drain the Ray Data job (see the module docstring)."""

    from uniqa.runtime import init_ray, quiet_ray_data
    from uniqa.scoring.score_stage import add_score_stages

    init_ray(address)
    quiet_ray_data(quiet=not progress)
    ds = read_input(inp)
    if done and inp.table is None:
        ds = ds.map_batches(sink.drop_ids, fn_kwargs={"ids": sink.id_array(done)}, batch_format="pyarrow",
                            batch_size=None)
    ds = ds.repartition(target_num_rows_per_block=cfg.block_rows(cfg.image_size, todo))
    ds = add_score_stages(ds, cfg, checksum)
    # Writing a file of scores is light I/O: with no CPU reserved it is never starved by decode tasks holding every
    # CPU, so files (the unit of resume) land as batches finish instead of all at the end.
    ds = ds.map_batches(sink.write_batch, fn_kwargs={"out": out, "schema": schema}, batch_format="pyarrow",
                        batch_size=cfg.rows_per_file, num_cpus=0)
    return sink.drain(ds, todo, desc="scoring", progress=progress)


def run_score(
    input_uri: str, out: str, cfg: ScoreConfig, progress: bool = True, address: str | None = None
) -> ScoreSummary:
    """Score every image of ``input_uri`` into ``out`` (local or ``s3://``); resumes where ``out`` left off."""
    from uniqa.scoring.api import resolved

    inp = resolve_input(input_uri, cfg.input_format)  # everything is checked before Ray starts
    cfg = resolved(cfg)
    checksum = fingerprint(cfg, cfg.image_size)
    schema = scores_schema(cfg.head_names, cfg.embeddings)
    check_resumable(out, checksum)
    sink.clean_temporaries(out)
    before = sink.output_state(out)
    done = before.ids
    if inp.table is not None:  # a listing / list file is already in memory: drop finished ids here, exactly
        inp = replace(inp, table=sink.drop_ids(inp.table, done))
    if inp.table is not None:
        todo = len(inp.table)
    else:  # for the progress bar only: the output may hold ids that are not in this manifest
        todo = None if inp.rows is None else max(inp.rows - len(done), 1)
    written = _score_rows(inp, done, cfg, out, checksum, schema, todo, progress, address) if todo else None
    if written:
        sink.settle(out, before.files, written.file_names)
    summary = ScoreSummary(
        input=inp.uri, out=out, input_kind=inp.kind, input_rows=inp.rows, already_done=len(done),
        rows_written=written.rows_written if written else 0, errors=written.errors if written else 0,
        output_rows=output_rows(out), seconds=written.seconds if written else 0.0, model_checksum=checksum,
        duplicates_in_input=inp.duplicates,
    )
    record = {"summary": asdict(summary), "images_per_second": summary.images_per_second, "config": asdict(cfg)}
    storage.write_bytes(storage.join(out, SUMMARY_FILE), json.dumps(record, indent=2).encode())
    return summary
