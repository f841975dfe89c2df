"""The feature-cache job: manifest -> skip finished images -> decode + K train views + test views -> frozen encoder
-> per-view features in Parquet (exactly-once, resumable, like scoring).

Keyed by model (weights and the positional-embedding switch) + view protocol (decode sizes included) + seed
(:func:`identity`): the first run stores them in ``OUT/_run.json`` and a rerun with other settings is refused
(:func:`uniqa.executor.execute`). The pre-flight (:func:`preflight`, no Ray, nothing written) checks the manifest
and the model, and the manifest's test side (rows whose ``split_*`` value is ``test`` in any split column) against
the model's pre-training record (:func:`uniqa.provenance.check_leak`); the work (:func:`work`) cleans a killed
run's leftovers and encodes only the images not under ``out`` yet. ``uniqa features`` and
``pipelines/features.py`` both call :func:`run_features`; ``uniqa adapt`` calls it when it is not given
``--features``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pyarrow.compute as pc

from uniqa import sink, storage
from uniqa.data.images import DECODE_SIZE_COLUMN, manifest_decode_sizes
from uniqa.errors import UniqaError
from uniqa.features.config import FeaturesConfig
from uniqa.models.encoder import FrozenModel, frozen_model
from uniqa.runtime import policy_threads
from uniqa.schema import SPLIT_COLUMNS, check_unique
from uniqa.stage import Outcome, Plan, Run, StageSummary
from uniqa.tables import dataset_schema, parquet_files, read_columns


@dataclass(kw_only=True)
class FeaturesPlan(Plan):
    """What the pre-flight found, before any Ray work."""

    files: list[str]  # the manifest's Parquet files
    rows: int  # its rows (ids checked unique and non-null)
    frozen: FrozenModel
    row_sizes: list[int | None]  # the manifest's distinct decode sizes (None: as stored)
    leak: dict  # the test side against the model's pre-training record (uniqa.provenance.check_leak)


def identity(cfg: FeaturesConfig, frozen: FrozenModel, row_sizes=()) -> dict:
    """What the features of an output folder are keyed by (stored as ``OUT/_run.json``); ``row_sizes``: the
    manifest's decode sizes (:func:`uniqa.data.images.manifest_decode_sizes`). ``decode``
    (:meth:`FeaturesConfig.decode_key`) is None when every image is decoded as stored, as a cache written before the
    key existed reads (:func:`uniqa.executor.check_identity` compares the keys given)."""
    from uniqa.data.views import VIEW_SCHEME

    return {"model_checksum": frozen.key, "protocol": cfg.protocol(frozen.image_size, row_sizes),
            "view_scheme": VIEW_SCHEME, "seed": cfg.seed, "model": frozen.name, "train_views": cfg.train_views,
            "test_views": cfg.test_views, "image_size": frozen.image_size, "decode": cfg.decode_key(row_sizes)}


def preflight(manifest: str, out: str, cfg: FeaturesConfig) -> FeaturesPlan:
    """Manifest files, its row count (ids checked unique), the resolved model, the decode sizes and the leak check;
    nothing touches Ray, nothing is written. The identity: :func:`identity` (``OUT/_run.json``)."""
    files = parquet_files(manifest)
    names = dataset_schema(files).names
    missing = [c for c in ("image_id", "image_uri") if c not in names]
    if missing:
        raise UniqaError(f"manifest {manifest}: missing column {missing[0]!r} (a manifest has image_id, image_uri)")
    ids = read_columns(files, ["image_id"])["image_id"]
    check_unique(ids, f"manifest {manifest}")
    if pc.sum(pc.is_null(ids)).as_py():
        raise UniqaError(f"manifest {manifest}: column 'image_id' has null values")
    frozen = frozen_model(cfg.model, cfg.pretrained, cfg.seed, cfg.pos_embedding)
    leak = test_side_leak(manifest, files, names, cfg)
    row_sizes = manifest_decode_sizes(files)
    return FeaturesPlan(inputs={"manifest": manifest}, identity=identity(cfg, frozen, row_sizes), files=files,
                        rows=len(ids), frozen=frozen, row_sizes=row_sizes, leak=leak)


def test_side_leak(manifest: str, files: list[str], names: list[str], cfg: FeaturesConfig) -> dict:
    """:func:`uniqa.provenance.check_leak` of the manifest's test side: the rows whose value is ``test`` in any
    ``split_*`` column, or in any of ``cfg.leak_splits`` when given (the split columns are read only when the model
    has a record). Without split columns nothing is checked: the provenance is reported with ``leaked`` None."""
    from uniqa.provenance import UNKNOWN, check_leak, find_record

    absent = [c for c in cfg.leak_splits if c not in names]
    if absent:
        raise UniqaError(f"manifest {manifest} has no column {absent[0]!r} (leak_splits); found {names}")
    record = find_record(cfg.model, cfg.pretrained)
    splits = list(cfg.leak_splits) or [c for c in SPLIT_COLUMNS if c in names]
    if record is None or not splits:
        return {"provenance": record or UNKNOWN, "leaked": None, "examples": []}
    table = read_columns(files, ["image_id", *splits])
    sides = [pc.fill_null(pc.equal(table[c], "test"), False) for c in splits]
    ids = table["image_id"].filter(functools.reduce(pc.or_, sides)).to_pylist()
    where = f"manifest {manifest} ({', '.join(splits)}; --set leak_splits=[...] checks fewer)"
    return check_leak(cfg.model, cfg.pretrained, ids, allow_leak=cfg.allow_leak, where=where)


def output_images(out: str) -> int:
    """Distinct images in the finished part files of ``out``."""
    return len(sink.output_state(out).ids) if storage.exists(out) else 0


def work(plan: FeaturesPlan, out: str, cfg: FeaturesConfig, run: Run) -> Outcome:
    """Encode every image of the manifest not yet under ``out``: a killed run's leftovers are cleaned and what
    ``out`` holds counted first (nothing left: no Ray job). The details hold the identity (``decode``: the decode
    sizes, None: as stored), ``pos_embedding`` and the leak check (``leak``)."""
    sink.clean_temporaries(out)
    before = sink.output_state(out)
    todo = max(plan.rows - len(before.ids), 0)
    written = _encode(plan, before, cfg, plan.identity["protocol"], out, todo, run) if todo else None
    if written:
        sink.settle(out, before.files, written.file_names)
    return Outcome(
        rows_in=plan.rows, rows_out=output_images(out), rows_written=written.rows_written if written else 0,
        rows_with_errors=written.errors if written else 0, already_done=len(before.ids), unit="images",
        details={**plan.identity, "pos_embedding": cfg.pos_embedding, "leak": plan.leak,
                 "threads": policy_threads(cfg.threads, cpus=cfg.num_cpus)},  # per actor
    )


def run_features(manifest: str, out: str, cfg: FeaturesConfig, *, progress: bool = True,
                 address: str | None = None) -> StageSummary:
    """Encode every image of ``manifest`` into ``out`` (:func:`uniqa.executor.execute` of this stage); resumes
    where ``out`` left off."""
    from uniqa.executor import execute

    return execute("features", [manifest], out, cfg, progress=progress, address=address)


def _encode(plan: FeaturesPlan, before, cfg, protocol, out, todo, run: Run) -> sink.SinkSummary:
    with run.ray():
        return sink.drain(_features_job(plan, before, cfg, protocol, out, todo), todo, desc="features",
                          progress=run.progress)


def _features_job(plan: FeaturesPlan, before, cfg, protocol, out, todo):
    from uniqa.features.features_stage import add_feature_stages
    from uniqa.tables import ray_read

    per_row = cfg.decode_size is None and any(s is not None for s in plan.row_sizes)
    ds = ray_read(plan.files, columns=["image_id", "image_uri", *([DECODE_SIZE_COLUMN] if per_row else [])])
    if len(before.ids):
        ds = ds.map_batches(sink.drop_ids, fn_kwargs={"ids": before.ids}, batch_format="pyarrow",
                            batch_size=None)
    ds = ds.repartition(target_num_rows_per_block=cfg.block_rows(plan.frozen.image_size, todo))
    return add_feature_stages(ds, cfg, plan.frozen, out, protocol)
