"""``run_purify``: manifest (aesthetics rows with comments) + captions -> kept comments under ``out/kept`` and
rejected ones, with their reason, under ``out/rejected``; ``out/_summary.json``.

Steps: pre-flight (:func:`preflight`: inputs exist, columns present, aesthetics rows, embedder weights; no Ray,
nothing written) -> the work (:func:`work`): previous part files removed (a purification run is recomputed whole,
so a rerun never duplicates rows; captioning, the expensive stage, is the resumable one) -> Ray Data: comments
joined with their captions by image_id partition, embedder actors clean, rank and keep the best K
(uniqa.purification.purify_stage). A rerun with the same config and the same input files (names, rows) into an
output that still holds its rows is recognised as done and does nothing (:func:`uniqa.executor.execute`).
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass

import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from uniqa import sink, storage
from uniqa.errors import UniqaError
from uniqa.purification.config import PurifyConfig
from uniqa.purification.embedders import EmbedderConfig
from uniqa.purification.purify_stage import KEPT_DIR, REJECTED_DIR
from uniqa.schema import CAPTIONS, MANIFEST
from uniqa.stage import Outcome, Plan, Run, StageSummary, config_fingerprint, input_identity
from uniqa.tables import dataset, parquet_files, remove_parts


@dataclass(kw_only=True)
class PurifyPlan(Plan):
    """What the pre-flight found: the inputs' files and the counts that size the job."""

    manifest_files: list[str]
    caption_files: list[str]
    aesthetics: int  # aesthetics rows of the manifest
    rows: int  # aesthetics rows + caption rows (sizes the join)


def preflight(manifest: str, captions: str, out: str, cfg: PurifyConfig) -> PurifyPlan:
    """Fail fast (before Ray, changing nothing) on missing files or columns, a manifest with no aesthetics rows
    (footers and a streamed count of the ``task`` column only) or unusable embedder weights. The identity: the
    config and both inputs' files (names, rows); a finished run of the same identity is not redone."""
    files = parquet_files(manifest)
    ds = dataset(files)
    MANIFEST.check_columns(ds.schema, manifest)
    if "comments" not in ds.schema.names:
        raise UniqaError(f"manifest {manifest} has no 'comments' column: purification needs an aesthetics dataset "
                         "with human comments (e.g. AVA with its AVA-Captions JSON)")
    caption_files = parquet_files(captions)
    caption_ds = dataset(caption_files)
    CAPTIONS.check_columns(caption_ds.schema, captions)
    aesthetics = ds.count_rows(filter=pads.field("task") == "aesthetics")
    if not aesthetics:
        raise UniqaError(f"manifest {manifest} has no aesthetics rows: purification works on aesthetics datasets "
                         "with human comments (e.g. AVA)")
    check_embedder(cfg.embedder)
    caption_rows = caption_ds.count_rows()
    identity = {"config": config_fingerprint(cfg), "manifest": input_identity(files, ds.count_rows()),
                "captions": input_identity(caption_files, caption_rows)}
    return PurifyPlan(inputs={"manifest": manifest, "captions": captions}, identity=identity, resume="whole",
                      manifest_files=files, caption_files=caption_files, aesthetics=aesthetics,
                      rows=aesthetics + caption_rows)


def check_embedder(cfg: EmbedderConfig) -> None:
    """The clip embedder's model name and weights (a path must exist, a tag must be the model's; the one rule,
    :func:`uniqa.storage.looks_like_path`), checked on the driver before any worker loads them."""
    if cfg.name != "clip":
        return
    from uniqa.models import resolve_model_name
    from uniqa.models.factory import pretrained_tag

    name = resolve_model_name(cfg.model)
    if cfg.pretrained is None:
        warnings.warn("embedder.pretrained is None: a randomly initialised text tower makes the relevance "
                      "ranks arbitrary; give a checkpoint (or use embedder.name=bow)", stacklevel=2)
        return
    pretrained_tag(name, cfg.pretrained)
    if storage.looks_like_path(cfg.pretrained) and not storage.is_dir(cfg.pretrained):
        try:  # readable, not just listed
            fs, path = storage.resolve(cfg.pretrained)
            with fs.open_input_stream(path) as f:
                f.read(1)
        except OSError as e:
            raise UniqaError(f"embedder.pretrained checkpoint {cfg.pretrained} is not readable: {e}") from None


def output_rows(out: str) -> int:
    """Rows in the part files of ``out/kept`` and ``out/rejected`` (footers only): the rows_out of a run."""
    return sum(_part_rows(storage.join(out, d)) for d in (KEPT_DIR, REJECTED_DIR))


def _part_rows(folder: str) -> int:
    fs, root = storage.resolve(folder)
    return sum(pq.read_metadata(f"{root}/{name}", filesystem=fs).num_rows for name in sink.part_names(folder))


def work(plan: PurifyPlan, out: str, cfg: PurifyConfig, run: Run) -> Outcome:
    """Purify every aesthetics image's comments: the previous part files removed, then the Ray Data job."""
    from uniqa.purification.purify_stage import purify_dataset

    kept_out, rejected_out = storage.join(out, KEPT_DIR), storage.join(out, REJECTED_DIR)
    for folder in (kept_out, rejected_out):
        remove_parts(folder)
    partitions = cfg.num_partitions(plan.rows)
    with run.ray():
        results = purify_dataset(plan.manifest_files, plan.caption_files, out, cfg, partitions)
        totals = drain_counts(results, plan.aesthetics, run.progress)
    rejected = sum(totals["rejected_by_reason"].values())
    return Outcome(
        rows_in=totals["comments"], rows_out=output_rows(out), rows_written=totals["kept"] + rejected,
        unit="comments",
        details={"images": totals["images"], "kept": totals["kept"], "rejected": rejected,
                 "rejected_by_reason": totals["rejected_by_reason"], "kept_out": kept_out,
                 "rejected_out": rejected_out, "keep": cfg.keep, "embedder": cfg.embedder.name,
                 "partitions": partitions},
    )


def run_purify(manifest: str, captions: str, out: str, cfg: PurifyConfig = PurifyConfig(), *,
               progress: bool = True, address: str | None = None) -> StageSummary:
    """Purify every aesthetics image's comments into ``out`` (:func:`uniqa.executor.execute` of this stage)."""
    from uniqa.executor import execute

    return execute("purify", [manifest, captions], out, cfg, progress=progress, address=address)


def drain_counts(results, total: int, progress: bool = True) -> dict:
    """Totals of the stage's per-batch count rows, with a progress bar over images (``total``: the aesthetics
    rows; those without comments are skipped, so the bar may end short of it)."""
    from tqdm import tqdm

    totals, reasons = Counter(), Counter()
    with tqdm(total=total, desc="purify", unit="img", disable=not progress) as bar:
        for batch in results.iter_batches(batch_format="pyarrow", batch_size=None):
            for name in ("images", "comments", "kept"):
                totals[name] += int(pc.sum(batch[name]).as_py() or 0)
            for mapping in batch["rejected"].to_pylist():
                reasons.update(dict(mapping or []))
            bar.update(int(pc.sum(batch["images"]).as_py() or 0))
    return {**{k: totals[k] for k in ("images", "comments", "kept")},
            "rejected_by_reason": dict(sorted(reasons.items()))}
