"""The feature-cache job: manifest -> skip finished images -> decode + K train views + test views -> frozen encoder
-> per-view features in Parquet (exactly-once, resumable, like scoring).

Keyed by model + view protocol + seed: the first run stores them in ``OUT/_run.json`` and a rerun with other
settings is refused (:func:`uniqa.sink.check_run_identity`). ``uniqa features`` and ``pipelines/features.py``
both call :func:`run_features`; ``uniqa adapt`` calls it when it is not given ``--features``.
"""

from __future__ import annotations

import pyarrow.compute as pc

from uniqa import sink, storage
from uniqa.errors import UniqaError
from uniqa.features.config import FeaturesConfig
from uniqa.models.encoder import FrozenModel, frozen_model
from uniqa.runtime import policy_threads
from uniqa.schema import check_unique
from uniqa.stage import StageSummary, config_fingerprint
from uniqa.tables import dataset_schema, parquet_files, read_columns


def identity(cfg: FeaturesConfig, frozen: FrozenModel) -> dict:
    """What the features of an output folder are keyed by (stored as ``OUT/_run.json``)."""
    from uniqa.data.views import VIEW_SCHEME

    return {"model_checksum": frozen.key, "protocol": cfg.protocol(frozen.image_size), "view_scheme": VIEW_SCHEME,
            "seed": cfg.seed, "model": frozen.name, "train_views": cfg.train_views, "test_views": cfg.test_views,
            "image_size": frozen.image_size}


def preflight(manifest: str, cfg: FeaturesConfig) -> tuple[list[str], int, FrozenModel]:
    """Manifest files, its row count (ids checked unique) and the resolved model; nothing touches Ray."""
    files = parquet_files(manifest)
    missing = [c for c in ("image_id", "image_uri") if c not in dataset_schema(files).names]
    if missing:
        raise UniqaError(f"manifest {manifest}: missing column {missing[0]!r} (a manifest has image_id, image_uri)")
    ids = read_columns(files, ["image_id"])["image_id"]
    check_unique(ids, f"manifest {manifest}")
    if pc.sum(pc.is_null(ids)).as_py():
        raise UniqaError(f"manifest {manifest}: column 'image_id' has null values")
    return files, len(ids), frozen_model(cfg.model, cfg.pretrained, cfg.seed)


def output_images(out: str) -> int:
    """Distinct images in the finished part files of ``out``."""
    return len(sink.output_state(out).ids) if storage.exists(out) else 0


def run_features(manifest: str, out: str, cfg: FeaturesConfig, *, progress: bool = True,
                 address: str | None = None) -> StageSummary:
    """Encode every image of ``manifest`` into ``out``; resumes where ``out`` left off."""
    files, rows_in, frozen = preflight(manifest, cfg)
    sink.check_run_identity(out, identity(cfg, frozen))
    sink.clean_temporaries(out)
    before = sink.output_state(out)
    todo = max(rows_in - len(before.ids), 0)
    written = _encode(files, before, cfg, frozen, out, todo, progress, address) if todo else None
    if written:
        sink.settle(out, before.files, written.file_names)
    return StageSummary(
        stage="features", inputs={"manifest": manifest}, output=out, rows_in=rows_in, rows_out=output_images(out),
        rows_written=written.rows_written if written else 0, rows_with_errors=written.errors if written else 0,
        already_done=len(before.ids), seconds=written.seconds if written else 0.0, unit="images",
        config_fingerprint=config_fingerprint(cfg),
        details={**identity(cfg, frozen), "threads": policy_threads(cfg.threads, cpus=cfg.num_cpus)},  # per actor
    ).write()


def _encode(files, before, cfg, frozen, out, todo, progress, address) -> sink.SinkSummary:
    from uniqa.features.features_stage import add_feature_stages
    from uniqa.runtime import drain_user_errors, init_ray, quiet_ray_data
    from uniqa.tables import ray_read

    init_ray(address)
    quiet_ray_data(quiet=not progress)
    ds = ray_read(files, columns=["image_id", "image_uri"])
    if before.ids:
        ds = ds.map_batches(sink.drop_ids, fn_kwargs={"ids": sink.id_array(before.ids)}, batch_format="pyarrow",
                            batch_size=None)
    ds = ds.repartition(target_num_rows_per_block=cfg.rows_per_block)
    ds = add_feature_stages(ds, cfg, frozen, out)
    return drain_user_errors(sink.drain, ds, todo, desc="features", progress=progress)
