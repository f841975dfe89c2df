"""``run_purify``: manifest (aesthetics rows with comments) + captions -> kept comments under ``out/kept`` and
rejected ones, with their reason, under ``out/rejected``; a summary in ``out/_summary.json``.

A purification run is recomputed from scratch: the previous run's part files in ``out`` are removed
first, so a rerun never duplicates rows (captioning, the expensive stage, is the resumable one).
"""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter

import pyarrow.compute as pc
import pyarrow.dataset as pads

from uniqa import storage
from uniqa.captioning.outputs import dataset_schema, drain_user_errors, remove_parts
from uniqa.errors import UniqaError
from uniqa.purification.embedders import EmbedderConfig
from uniqa.purification.purify import PurifyConfig
from uniqa.purification.purify_stage import KEPT_DIR, REJECTED_DIR, PurifyStage, comment_rows
from uniqa.schema import CAPTIONS, MANIFEST
from uniqa.tables import parquet_files

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def check_inputs(manifest: str, captions: str) -> tuple[list[str], int]:
    """Fail fast (before Ray) on missing files or columns; returns (the manifest's Parquet files, its number of
    aesthetics rows)."""
    files = parquet_files(manifest)
    schema = dataset_schema(files)
    MANIFEST.check_columns(schema, manifest)
    if "comments" not in schema.names:
        raise UniqaError(f"manifest {manifest} has no 'comments' column: purification needs an aesthetics dataset "
                         "with human comments (e.g. AVA with its AVA-Captions JSON)")
    CAPTIONS.check_columns(dataset_schema(parquet_files(captions)), captions)
    fs, _ = storage.resolve(files[0])
    tasks = pads.dataset([storage.resolve(f)[1] for f in files], format="parquet", filesystem=fs).to_table(
        columns=["task"])["task"]
    aesthetics = int(pc.sum(pc.equal(tasks, "aesthetics")).as_py() or 0)
    if not aesthetics:
        raise UniqaError(f"manifest {manifest} has no aesthetics rows: purification works on aesthetics datasets "
                         "with human comments (e.g. AVA)")
    return files, aesthetics


def check_embedder(cfg: EmbedderConfig) -> None:
    """The clip embedder's model name and checkpoint path, checked on the driver (not in every worker)."""
    if cfg.name != "clip":
        return
    from uniqa.models import resolve_model_name

    resolve_model_name(cfg.model)
    p = cfg.pretrained
    if p is None:
        warnings.warn("embedder.pretrained is None: a randomly initialised text tower makes the relevance "
                      "ranks arbitrary; give a checkpoint (or use embedder.name=bow)", stacklevel=2)
    elif (storage.is_s3(p) or "/" in p or p.endswith(CHECKPOINT_SUFFIXES)) and not storage.exists(p):
        raise UniqaError(f"embedder.pretrained checkpoint not found: {p}")


def run_purify(manifest: str, captions: str, out: str, cfg: PurifyConfig = PurifyConfig(),
               progress: bool = True) -> dict:
    """Purify every aesthetics image's comments; returns the summary (also written to out/_summary.json)."""
    import ray

    from uniqa.runtime import init_ray, quiet_ray_data

    files, images = check_inputs(manifest, captions)
    check_embedder(cfg.embedder)
    for folder in (storage.join(out, KEPT_DIR), storage.join(out, REJECTED_DIR)):
        remove_parts(folder)
    init_ray()
    quiet_ray_data(quiet=not progress)
    start = time.perf_counter()
    fs, _ = storage.resolve(manifest)
    ds = ray.data.read_parquet([storage.resolve(f)[1] for f in files], filesystem=fs).select_columns(
        ["image_id", "task", "comments"])  # only these columns are read (the projection is pushed down)
    ds = ds.map_batches(comment_rows, batch_format="pyarrow")
    results = ds.map_batches(
        PurifyStage, fn_constructor_kwargs={"cfg": cfg, "captions": captions, "out": out},
        batch_size=cfg.images_per_batch, batch_format="pyarrow", num_cpus=cfg.num_cpus, num_gpus=cfg.num_gpus,
        compute=ray.data.ActorPoolStrategy(size=cfg.num_actors),
    )
    batches = drain_user_errors(drain_counts, results, images, progress)
    summary = summarise(batches, time.perf_counter() - start)
    summary.update(out=out, kept_out=storage.join(out, KEPT_DIR), rejected_out=storage.join(out, REJECTED_DIR),
                   keep=cfg.keep,
                   embedder=cfg.embedder.name, seconds=round(time.perf_counter() - start, 2))
    storage.write_bytes(storage.join(out, "_summary.json"), json.dumps(summary, indent=2).encode())
    return summary


def drain_counts(results, total: int, progress: bool = True) -> list:
    """The stage's per-batch count rows, with a progress bar over images (``total``: the aesthetics rows; those
    without comments are skipped, so the bar may end short of it)."""
    from tqdm import tqdm

    batches = []
    with tqdm(total=total, desc="purify", unit="img", disable=not progress) as bar:
        for batch in results.iter_batches(batch_format="pyarrow", batch_size=None):
            batches.append(batch)
            bar.update(int(pc.sum(batch["images"]).as_py() or 0))
    return batches


def summarise(batches, seconds: float) -> dict:
    """Totals of the stage's per-batch count rows."""
    totals, reasons = Counter(), Counter()
    for batch in batches:
        for name in ("images", "comments", "kept"):
            totals[name] += int(pc.sum(batch[name]).as_py() or 0)
        for mapping in batch["rejected"].to_pylist():
            reasons.update(dict(mapping or []))
    return {"images": totals["images"], "comments": totals["comments"], "kept": totals["kept"],
            "rejected": sum(reasons.values()), "rejected_by_reason": dict(sorted(reasons.items())),
            "seconds": round(seconds, 2)}


def summary_line(summary: dict) -> str:
    reasons = ", ".join(f"{k} {v}" for k, v in summary["rejected_by_reason"].items()) or "none"
    return (f"{summary['images']} images, {summary['comments']} comments: {summary['kept']} kept, "
            f"{summary['rejected']} rejected ({reasons}) in {summary['seconds']:.1f} s -> {summary['kept_out']}, "
            f"{summary['rejected_out']}")
