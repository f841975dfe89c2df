"""``run_pretrain``: corpus -> one Ray Data stream per worker rank -> Ray Train ``TorchTrainer`` -> ``RUN/final``
(all Ray Train code). Each rank reads its own dataset (``train_<rank>``, not a streaming split), so the rows of every
step are a function of the seed and the number of workers, not of which worker asked for data first.

Layout of a run folder ``RUN`` (local or ``s3://``):
- ``RUN/<name>/``: Ray Train's run (checkpoints, kept ``keep_checkpoints``); rerunning the same command resumes
  from the newest, and a worker that fails restarts the group from it (``max_failures``);
- ``RUN/metrics.jsonl``: one line per step (loss, lr, logit_scale, images_per_s, epoch, torch threads);
- ``RUN/final/``: our checkpoint folder (``uniqa score --model RUN/final``) + ``openai.pt`` (OpenAI keys:
  ``--model ARCH --pretrained RUN/final/openai.pt``);
- ``RUN/_skipped_images.json``: corpus images that could not be decoded (skipped, counted);
- ``RUN/_summary.json``: the stage summary; its unit is optimiser **steps** (rows_in = steps planned,
  rows_out = steps done, rows_written = steps run by this call, already_done = steps resumed from).
"""

from __future__ import annotations

import json
import os
import threading

from uniqa import storage
from uniqa.errors import UniqaError
from uniqa.runtime import policy_threads
from uniqa.schema import CORPUS
from uniqa.stage import StageSummary, Timer, config_fingerprint
from uniqa.tables import count_rows, dataset_schema, parquet_files, ray_read
from uniqa.training.config import PretrainConfig
from uniqa.training.ingest import check_images, expand_from_run, group_texts, make_views, rank_counts, rank_streams
from uniqa.training.loop import FINAL, Plan, Worker, train
from uniqa.training.metrics import METRICS, read_metrics

SKIPPED = "_skipped_images.json"
CORPUS_COLUMNS = ["image_id", "image_uri", "text", "source", "weight"]
ROWS_PER_PARTITION = 50_000  # corpus rows per groupby partition when the index is built
VIEW_BLOCK_ROWS = 256  # rows per decode task (smaller: more per-block overhead in the split coordinator)


def preflight(corpus: str, out: str, cfg: PretrainConfig) -> tuple[list[str], str, str | None, int]:
    """Storage and model checks before any Ray work -> (corpus files, model name, initial weights, corpus rows)."""
    from uniqa.models import resolve_model_name
    from uniqa.models.factory import resolve_model

    files = parquet_files(corpus)
    CORPUS.check_columns(dataset_schema(files), corpus)
    rows = count_rows(files)
    if rows == 0:
        raise UniqaError(f"corpus {corpus} has no rows: nothing to train on")
    if cfg.batch_size > rows:
        raise UniqaError(f"batch_size {cfg.batch_size} is larger than the corpus ({rows} rows in {corpus})")
    name, pretrained = resolve_model(cfg.model, cfg.pretrained)
    name = resolve_model_name(name)
    if pretrained and storage.looks_like_path(pretrained) and not storage.exists(pretrained):
        raise UniqaError(f"pretrained weights not found: {pretrained}")
    if not storage.is_s3(out) and os.path.exists(out) and not os.path.isdir(out):
        raise UniqaError(f"--out {out} is a file, not a folder")
    return files, name, pretrained, rows


def image_size(model_name: str) -> int:
    from uniqa.models.factory import model_image_size

    return model_image_size(model_name)


def build_index(files: list[str], cfg: PretrainConfig, rows: int):
    """One row per image with its texts, every image decoded once -> (materialised usable index, skipped list,
    how many were skipped)."""
    ds = ray_read(files, columns=CORPUS_COLUMNS)
    partitions = max(1, min(200, rows // ROWS_PER_PARTITION))  # Ray's default of 200 is slow for a small corpus
    ds = ds.groupby("image_id", num_partitions=partitions).map_groups(group_texts, batch_format="pyarrow",
                                                                      num_cpus=cfg.decode_cpus)
    ds = ds.map_batches(check_images, fn_kwargs={"max_pixels": cfg.max_pixels}, batch_format="pyarrow",
                        batch_size=64, num_cpus=cfg.decode_cpus).materialize()
    bad = ds.map_batches(_rows_with_error, fn_kwargs={"error": True}, batch_format="pyarrow", batch_size=None,
                         num_cpus=0).materialize()
    skipped = [{"image_id": r["image_id"], "error": r["error"]} for r in bad.take(1000)]
    good = ds.map_batches(_rows_with_error, fn_kwargs={"error": False}, batch_format="pyarrow", batch_size=None,
                          num_cpus=0).materialize()
    return good, skipped, bad.count()


def _rows_with_error(batch, error: bool):
    """The index rows whose image failed to decode (``error``), or the usable ones without the error column."""
    import pyarrow.compute as pc

    if error:
        return batch.filter(pc.is_valid(batch["error"])).select(["image_id", "error"])
    return batch.filter(pc.is_null(batch["error"])).drop_columns(["error"])


def stream_epochs(index, cfg: PretrainConfig, total_steps: int, images: int) -> int:
    """Epochs of (image, epoch) rows that give every rank the ``total_steps x batch_size / num_workers`` rows it
    trains on: the hashed rank split is not exactly balanced (nor is an epoch complete when an image has no text
    of a weighted source), so epochs are added past ``total x batch / images`` until the shortest rank has
    enough. Counted in Ray Data without decoding."""
    need, world = total_steps * cfg.batch_size // cfg.num_workers, cfg.num_workers
    epochs, have = 0, [0] * world
    add = -(-total_steps * cfg.batch_size // images)
    while min(have) < need:
        kwargs = {"seed": cfg.seed, "first_epoch": epochs, "epochs": epochs + add, "world_size": world,
                  "source_weights": cfg.sources.as_dict()}
        rows = index.map_batches(rank_counts, fn_kwargs=kwargs, batch_format="pyarrow", batch_size=4096,
                                 num_cpus=cfg.decode_cpus).take_all()
        if not any(row["rows"] for row in rows):
            raise UniqaError(f"no corpus image has a text of a source with a weight > 0 (sources: "
                             f"{cfg.sources.as_dict()}): nothing to train on")
        for row in rows:
            have[row["rank"]] += row["rows"]
        epochs += add
        add = max(1, -(-(need - min(have)) * world // images))
    return epochs


def training_dataset(index, cfg: PretrainConfig, plan: Plan, epochs: int, size: int, rank: int = 0):
    """Worker ``rank``'s stream (of ``cfg.num_workers``): its (image, epoch) rows in ``order``, views and tokens
    made in Ray Data. Rank ``r``'s k-th micro-batch is rows ``[k m, (k+1) m)`` of this stream (m: micro batch)."""
    kwargs = {"run": plan.run, "rank": rank, "world_size": cfg.num_workers, "seed": cfg.seed, "epochs": epochs,
              "source_weights": cfg.sources.as_dict(), "text_choice": cfg.text_choice}
    ds = index.map_batches(expand_from_run, fn_kwargs=kwargs, batch_format="pyarrow", batch_size=16,
                           num_cpus=cfg.decode_cpus)
    # the sort yields a few large blocks: cut them (streaming, order kept) so that decode runs in parallel tasks
    # and the first batch comes after one small block, not after a whole sorted partition is decoded
    ds = ds.sort("order").repartition(target_num_rows_per_block=max(cfg.micro_batch, VIEW_BLOCK_ROWS))
    return ds.map_batches(make_views, fn_kwargs={"model": plan.model_name, "size": size, "view": cfg.view,
                                                "flip": cfg.flip, "max_pixels": cfg.max_pixels,
                                                "cache_mb": cfg.decode_cache_mb},
                          batch_format="numpy", batch_size=max(cfg.micro_batch, 16), num_cpus=cfg.decode_cpus)


def report(metrics: dict, folder: str | None) -> None:
    """The one Ray Train report helper the loop uses (every rank calls it; rank 0 with the checkpoint)."""
    import ray.train

    ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder) if folder else None)


def train_worker(config: dict) -> None:
    """``train_loop_per_worker``: this worker's context, shard and checkpoint -> :func:`uniqa.training.loop.train`."""
    import ray.train
    import ray.train.torch
    import torch

    cfg, plan = config["cfg"], config["plan"]
    ctx = ray.train.get_context()
    world = ctx.get_world_size()
    checkpoint = ray.train.get_checkpoint()
    shard = config["streams"][ctx.get_world_rank()]  # this rank's own stream (see rank_streams)

    def barrier():
        if world > 1:
            torch.distributed.barrier()

    def batches():
        return shard.iter_torch_batches(batch_size=cfg.micro_batch, drop_last=True,
                                        dtypes={"image": torch.uint8, "tokens": torch.int64, "order": torch.int64})

    def run(restored):
        worker = Worker(rank=ctx.get_world_rank(), world_size=world, device=str(ray.train.torch.get_device()),
                        wrap=ray.train.torch.prepare_model if world > 1 else (lambda m: m), report=report,
                        restored=restored, barrier=barrier)
        train(cfg, plan, worker, batches)

    if checkpoint is None:
        run(None)
    else:
        with checkpoint.as_directory() as folder:
            run(folder)


def _trainer(streams: list, cfg: PretrainConfig, plan: Plan):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    resources = {"CPU": cfg.cpus_per_worker, **({"GPU": cfg.gpus_per_worker} if cfg.use_gpu else {})}
    fs, path = storage.ray_storage(plan.run)

    return TorchTrainer(
        train_worker,
        train_loop_config={"cfg": cfg, "plan": plan, "streams": streams},
        scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name=cfg.name, storage_path=path, storage_filesystem=fs,
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
            failure_config=FailureConfig(max_failures=cfg.max_failures)),
    )


def _last_step(run: str) -> int:
    records = read_metrics(run)
    return records[-1]["step"] if records else 0


def _progress(run: str, total: int, stop: threading.Event) -> None:
    """Print a progress line from the metrics log while training runs."""
    last = None
    while not stop.wait(3.0):
        try:
            records = read_metrics(run)
        except (OSError, ValueError):  # read while rank 0 rewrites it
            continue
        record = records[-1] if records else None
        if record and record != last:
            last = record
            print(f"pretrain: step {record['step']}/{total} loss {record['loss']:.4f} lr {record['lr']:.2e} "
                  f"logit_scale {record['logit_scale']:.1f} {record['images_per_s']:.0f} img/s "
                  f"epoch {record['epoch']:.2f}", flush=True)


def write_corpus_record(index, out: str, corpus: str, cfg: PretrainConfig, pretrained: str | None) -> str:
    """``RUN/final/corpus_ids.parquet`` (:mod:`uniqa.provenance`): the hashed ids of the index's images, streamed
    from Ray in batches, merged with the starting weights' record when they have one."""
    import numpy as np

    from uniqa.provenance import find_record, id_hashes, write_record

    parts = [id_hashes(batch["image_id"].to_pylist()) for batch in
             index.select_columns(["image_id"]).iter_batches(batch_format="pyarrow", batch_size=65536)]
    return write_record(storage.join(out, FINAL), np.concatenate(parts), corpus, find_record(cfg.model, pretrained))


def run_pretrain(corpus: str, out: str, cfg: PretrainConfig, *, progress: bool = True,
                 address: str | None = None) -> StageSummary:
    """Pre-train on ``corpus`` into ``out``; a rerun resumes from the newest checkpoint. Unit: optimiser steps."""
    from uniqa.runtime import ray_work

    # Ray Train runs the workers in a directory of its own: every local path they see must be absolute
    corpus, out = storage.absolute(corpus), storage.absolute(out)
    files, name, pretrained, rows = preflight(corpus, out, cfg)  # nothing below runs on bad input
    if pretrained and storage.looks_like_path(pretrained):
        pretrained = storage.absolute(pretrained)
    size = image_size(name)
    with ray_work(address, progress):
        index, skipped, n_skipped = build_index(files, cfg, rows)
    images = index.count()
    if images == 0:
        raise UniqaError(f"corpus {corpus} has no usable images ({n_skipped} could not be decoded, e.g. "
                         f"{skipped[0]['error'] if skipped else '-'})")
    if cfg.batch_size > images:
        raise UniqaError(f"batch_size {cfg.batch_size} is larger than the corpus ({images} usable images)")
    total = cfg.steps or (cfg.epochs * images) // cfg.batch_size
    if total < 1:
        raise UniqaError(f"{cfg.epochs} epoch(s) of {images} images make no full batch of {cfg.batch_size}")
    epochs = stream_epochs(index, cfg, total, images)
    plan = Plan(run=out, model_name=name, pretrained=pretrained, images=images, total_steps=total)
    storage.write_bytes(storage.join(out, SKIPPED), json.dumps({"count": n_skipped, "images": skipped}).encode())
    before = _last_step(out)
    stop = threading.Event()
    if progress:
        threading.Thread(target=_progress, args=(out, total, stop), daemon=True).start()
    streams = rank_streams([training_dataset(index, cfg, plan, epochs, size, r) for r in range(cfg.num_workers)], cfg)
    try:
        with Timer() as timer:
            result = _trainer(streams, cfg, plan).fit()
    finally:
        stop.set()
    if getattr(result, "error", None):
        raise result.error
    done = _last_step(out)
    record = write_corpus_record(index, out, corpus, cfg, pretrained) if done >= total else None
    return StageSummary(
        stage="pretrain", inputs={"corpus": corpus}, output=out, rows_in=total, rows_out=done,
        rows_written=max(done - before, 0), already_done=before, seconds=timer.seconds, unit="steps",
        config_fingerprint=config_fingerprint(cfg),
        details={"model": name, "pretrained": pretrained, "corpus_rows": rows, "images": images,
                 "images_skipped": n_skipped, "epochs": round(total * cfg.batch_size / images, 3),
                 "stream_epochs": epochs, "threads": policy_threads(cfg.threads, cpus=cfg.cpus_per_worker),
                 "final": storage.join(out, FINAL), "metrics": storage.join(out, METRICS), "corpus_record": record,
                 "images_per_s": round(max(done - before, 0) * cfg.batch_size / max(timer.seconds, 1e-9), 2)},
    ).write()
