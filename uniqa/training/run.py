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
- ``RUN/_run.json``: the run identity (:func:`identity`: what the weights depend on), pinned by the first run; a
  rerun with another one is refused (:func:`uniqa.executor.execute`) instead of resuming into mixed weights;
- ``RUN/_summary.json``: the stage summary; its unit is optimiser **steps** (rows_in = steps planned,
  rows_out = steps done, rows_written = steps run by this call, already_done = steps resumed from). A rerun of a
  finished run finds it there and ends "already done" without a Ray session.

The pre-flight (:func:`preflight`) checks the corpus, the model and ``RUN`` before any Ray work; the work
(:func:`work`) builds the index of usable images, plans the steps and fits the trainer, all in one Ray session.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass

from uniqa import storage
from uniqa.errors import UniqaError
from uniqa.runtime import policy_threads
from uniqa.schema import CORPUS
from uniqa.stage import Outcome, Plan, Run, StageSummary, Timer, input_identity
from uniqa.tables import count_rows, dataset_schema, parquet_files
from uniqa.training.config import EXECUTION, PretrainConfig
from uniqa.training.dataset import build_index, stream_epochs, training_dataset
from uniqa.training.ingest import rank_streams
from uniqa.training.loop import FINAL, Worker, train
from uniqa.training.loop import Plan as LoopPlan
from uniqa.training.metrics import METRICS, read_metrics

SKIPPED = "_skipped_images.json"


@dataclass(kw_only=True)
class PretrainPlan(Plan):
    """What the pre-flight found: the corpus and the model the work trains."""

    files: list[str]  # the corpus's Parquet files
    corpus_rows: int
    model_name: str
    pretrained: str | None  # initial weights (a local path made absolute)


def preflight(corpus: str, out: str, cfg: PretrainConfig) -> PretrainPlan:
    """Storage and model checks before any Ray work, changing nothing: the corpus (columns, rows, batch size), the
    model and its initial weights, ``out`` (a folder). Local paths are made absolute (Ray Train runs the workers in a
    directory of their own). The identity: :func:`identity`."""
    from uniqa.models import resolve_model_name
    from uniqa.models.factory import resolve_model

    corpus, out = storage.absolute(corpus), storage.absolute(out)
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
    if pretrained and storage.looks_like_path(pretrained):
        pretrained = storage.absolute(pretrained)
    return PretrainPlan(inputs={"corpus": corpus}, identity=identity(cfg, name, pretrained, files, rows), final=True,
                        files=files, corpus_rows=rows, model_name=name, pretrained=pretrained)


def identity(cfg: PretrainConfig, model_name: str, pretrained: str | None, files: list[str], rows: int) -> dict:
    """What the trained weights depend on (``RUN/_run.json``), as JSON values: the config without its
    :data:`EXECUTION` knobs (``epochs`` only when ``steps`` is not set), the model resolved (architecture, initial
    weights) and the corpus (:func:`uniqa.stage.input_identity`)."""
    values = {k: v for k, v in asdict(cfg).items() if k not in EXECUTION}
    values.update(model=model_name, pretrained=pretrained, epochs=None if cfg.steps else cfg.epochs,
                  corpus=input_identity(files, rows))
    return json.loads(json.dumps(values))


def image_size(model_name: str) -> int:
    from uniqa.models.factory import model_image_size

    return model_image_size(model_name)


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


def _trainer(streams: list, cfg: PretrainConfig, plan: LoopPlan):
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


def work(plan: PretrainPlan, out: str, cfg: PretrainConfig, run: Run) -> Outcome:
    """Pre-train on the corpus into ``out`` (resuming from the newest checkpoint) in one Ray session: the index of
    usable images, the steps planned, the trainer fitted, the corpus record written (a run already finished under
    ``out`` is found done by the executor: ``final``, :func:`output_rows`). Unit: optimiser steps."""
    out = storage.absolute(out)  # Ray Train runs the workers in a directory of its own
    corpus = plan.inputs["corpus"]
    size = image_size(plan.model_name)
    with run.ray():
        index, skipped, n_skipped = build_index(plan.files, cfg, plan.corpus_rows)
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
        loop_plan = LoopPlan(run=out, model_name=plan.model_name, pretrained=plan.pretrained, images=images,
                             total_steps=total)
        storage.write_bytes(storage.join(out, SKIPPED), json.dumps({"count": n_skipped, "images": skipped}).encode())
        before = _last_step(out)
        stop = threading.Event()
        if run.progress:
            threading.Thread(target=_progress, args=(out, total, stop), daemon=True).start()
        streams = rank_streams([training_dataset(index, cfg, loop_plan, epochs, size, r)
                                for r in range(cfg.num_workers)], cfg)
        try:
            with Timer() as timer:  # the fit alone: images_per_s
                result = _trainer(streams, cfg, loop_plan).fit()
        finally:
            stop.set()
        if getattr(result, "error", None):
            raise result.error
        done = _last_step(out)
        record = write_corpus_record(index, out, corpus, cfg, plan.pretrained) if done >= total else None
    return Outcome(
        rows_in=total, rows_out=done, rows_written=max(done - before, 0), already_done=before, unit="steps",
        details={"model": plan.model_name, "pretrained": plan.pretrained, "corpus_rows": plan.corpus_rows,
                 "images": images, "images_skipped": n_skipped, "epochs": round(total * cfg.batch_size / images, 3),
                 "stream_epochs": epochs, "threads": policy_threads(cfg.threads, cpus=cfg.cpus_per_worker),
                 "final": storage.join(out, FINAL), "metrics": storage.join(out, METRICS), "corpus_record": record,
                 "images_per_s": round(max(done - before, 0) * cfg.batch_size / max(timer.seconds, 1e-9), 2)},
    )


def output_rows(out: str) -> int:
    """The steps a run under ``out`` has logged, while its final weights are there (0 otherwise): what a finished
    run's summary must still match to be found done."""
    out = storage.absolute(out)
    return _last_step(out) if storage.exists(storage.join(out, FINAL, "openai.pt")) else 0


def run_pretrain(corpus: str, out: str, cfg: PretrainConfig, *, progress: bool = True,
                 address: str | None = None) -> StageSummary:
    """Pre-train on ``corpus`` into ``out`` (:func:`uniqa.executor.execute` of this stage); a rerun resumes from
    the newest checkpoint. Unit: optimiser steps."""
    from uniqa.executor import execute

    return execute("pretrain", [corpus], out, cfg, progress=progress, address=address)
