"""``run_purify``: manifest (aesthetics rows with comments) + captions -> kept comments under ``out/kept`` and
rejected ones, with their reason, under ``out/rejected``; ``out/_summary.json``.

Steps: pre-flight (inputs exist, columns present, aesthetics rows, embedder weights; no Ray) -> previous part
files removed (a purification run is recomputed from scratch, so a rerun never duplicates rows; captioning, the
expensive stage, is the resumable one) -> Ray Data: comments joined with their captions by image_id partition,
embedder actors clean, rank and keep the best K (uniqa.purification.purify_stage).
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
from uniqa.stage import StageSummary, Timer, config_fingerprint
from uniqa.tables import dataset, parquet_files, remove_parts


@dataclass(frozen=True)
class PurifyInputs:
    manifest_files: list[str]
    caption_files: list[str]
    aesthetics: int  # aesthetics rows of the manifest
    rows: int  # aesthetics rows + caption rows (sizes the join)


def check_inputs(manifest: str, captions: str) -> PurifyInputs:
    """Fail fast (before Ray) on missing files or columns or a manifest with no aesthetics rows (footers and a
    streamed count of the ``task`` column only)."""
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
    return PurifyInputs(files, caption_files, aesthetics, aesthetics + caption_ds.count_rows())


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
    """Rows in the part files of ``out`` (footers only)."""
    fs, root = storage.resolve(out)
    return sum(pq.read_metadata(f"{root}/{name}", filesystem=fs).num_rows for name in sink.part_names(out))


def run_purify(manifest: str, captions: str, out: str, cfg: PurifyConfig = PurifyConfig(), *,
               progress: bool = True, address: str | None = None) -> StageSummary:
    """Purify every aesthetics image's comments; returns the summary (also written to out/_summary.json)."""
    from uniqa.purification.purify_stage import purify_dataset
    from uniqa.runtime import ray_work

    inputs = check_inputs(manifest, captions)
    check_embedder(cfg.embedder)
    kept_out, rejected_out = storage.join(out, KEPT_DIR), storage.join(out, REJECTED_DIR)
    for folder in (kept_out, rejected_out):
        remove_parts(folder)
    partitions = cfg.num_partitions(inputs.rows)
    with ray_work(address, progress), Timer() as timer:
        results = purify_dataset(inputs.manifest_files, inputs.caption_files, out, cfg, partitions)
        totals = drain_counts(results, inputs.aesthetics, progress)
    rejected = sum(totals["rejected_by_reason"].values())
    return StageSummary(
        stage="purify", inputs={"manifest": manifest, "captions": captions}, output=out, rows_in=totals["comments"],
        rows_out=output_rows(kept_out) + output_rows(rejected_out), rows_written=totals["kept"] + rejected,
        seconds=timer.seconds, unit="comments", config_fingerprint=config_fingerprint(cfg),
        details={"images": totals["images"], "kept": totals["kept"], "rejected": rejected,
                 "rejected_by_reason": totals["rejected_by_reason"], "kept_out": kept_out,
                 "rejected_out": rejected_out, "keep": cfg.keep, "embedder": cfg.embedder.name,
                 "partitions": partitions},
    ).write()


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
