"""Pre-training benchmarks on the embedded sample corpus (CPU, no downloads), measured side by side in one run.

    python benchmarks/pretrain.py [--steps 60]     # Ray Train (1 worker) vs a plain loop; Ray Data vs DataLoader
    python benchmarks/pretrain.py --learns         # zero-shot SRCC before / after pre-training (2 workers, < 5 min)
    python benchmarks/pretrain.py --busy 1         # either, idle and then beside a CPU-burning process

(a) the same optimiser steps (same loop, same data stream, same seed) through Ray Train with one worker and through
    a plain single-process loop fed by a torch DataLoader -> wall time, median step time and images/s of each, and
    the overhead ratio Ray / plain (goal <= 1.15);
(b) the ingestion alone: the Ray Data stream (decode + crop + tokenise tasks, ``iter_torch_batches``) vs a torch
    DataLoader running the same batch functions -> images/s of each.
``--learns``: builds a corpus from the training split of the sample's IQA part (an attributes caption + the level
prompt per image; the held-out references' images never enter it), scores the test split zero-shot with the exact
weights pre-training starts from (``save_initial_weights``), pre-trains on 2 workers, scores again and prints both
SRCCs. Default: uniqa-tiny for 1,500 steps (METHOD §2 recipe otherwise), about 4 minutes of training on 2 cores.
Both loops run with the thread policy's count (a 1-CPU Train worker and the driver's plain loop: 1 thread).
``--busy N`` runs the measurement again beside N CPU-burning processes (the sample and corpus are made once) and
prints both side by side; the headline is the steady overhead ratio (``--learns``: the SRCC gain).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from neighbours import add_busy_argument, side_by_side  # noqa: E402

from uniqa.training.config import PretrainConfig  # noqa: E402

RECIPE = dict(model="uniqa-small", lr=1e-3, weight_decay=0.1, beta2=0.98, batch_size=64, warmup_steps=50,
              max_logit_scale=100.0)  # METHOD §2, the CPU demo recipe


def sample_manifest(work: str) -> str:
    from uniqa.data.prepare import PrepareConfig, prepare
    from uniqa.data.sample import build_sample

    build_sample(f"{work}/sample", seed=0)
    prepare("kadid10k", f"{work}/sample/iqa", f"{work}/manifest", PrepareConfig())
    return f"{work}/manifest"


def training_corpus(manifest: str, out: str, split: str = "split_0") -> int:
    """Corpus rows for the images of the train side of ``split``: an attributes quality caption + the level prompt."""
    from uniqa.captioning.attributes import caption_batch
    from uniqa.schema import MANIFEST
    from uniqa.tables import read_table

    table = read_table(manifest, MANIFEST)
    train = table.filter(pa.compute.equal(table[split], "train"))
    batch = {c: np.array(train[c].to_pylist(), dtype=object) for c in ("image_id", "image_uri", "level")}
    batch["task"] = np.array(["quality"] * len(train), dtype=object)
    captions = caption_batch(batch).to_pylist()
    rows = {"image_id": [], "image_uri": [], "text": [], "source": [], "weight": []}
    for image_id, uri, level, cap in zip(batch["image_id"], batch["image_uri"], batch["level"], captions):
        for text, source in ((cap["caption"], "quality_caption"), (f"{level} image", "level_prompt")):
            if text:
                for key, value in zip(rows, (image_id, uri, text, source, 1.0)):
                    rows[key].append(value)
    os.makedirs(out, exist_ok=True)
    pq.write_table(pa.table(rows), f"{out}/part-0.parquet")
    return len(train)


def zero_shot_srcc(manifest: str, model: str, split: str = "split_0") -> tuple[float, int]:
    from uniqa.evaluation.metrics import srcc
    from uniqa.schema import MANIFEST
    from uniqa.scoring.api import Scorer
    from uniqa.tables import read_table

    table = read_table(manifest, MANIFEST)
    test = table.filter(pa.compute.equal(table[split], "test"))
    scorer = Scorer.from_pretrained(model, heads=("quality",), views="crops10")
    scores = [r["quality"] for r in scorer.score(test["image_uri"].to_pylist())]
    return srcc(np.array(scores), test["mos"].to_numpy()), len(test)


LEARNS = {"model": "uniqa-tiny", "steps": 1500}  # --learns defaults: fits the 5-minute bar on 2 CPU workers


def learns(work: str, steps: int, workers: int, model: str = LEARNS["model"]):
    """Set up once (sample, corpus, initial weights and their SRCC); returns ``measure()``: pre-train into a fresh
    run folder and score again."""
    from uniqa.models import resolve_model_name
    from uniqa.runtime import init_ray
    from uniqa.training.loop import save_initial_weights
    from uniqa.training.run import run_pretrain

    manifest = sample_manifest(work)
    images = training_corpus(manifest, f"{work}/corpus")
    cfg = PretrainConfig(**{**RECIPE, "model": model}, steps=steps, num_workers=workers, cpus_per_worker=0.5,
                         decode_cpus=0.5, threads=max(1, 2 // workers), checkpoint_every=max(steps // 4, 1))
    save_initial_weights(cfg, resolve_model_name(model), f"{work}/init")  # the weights the run starts from
    before, n = zero_shot_srcc(manifest, f"{work}/init")
    runs = iter(range(1000))

    def measure() -> dict:
        init_ray()
        run = f"{work}/run{next(runs)}"
        start = time.perf_counter()
        summary = run_pretrain(f"{work}/corpus", run, cfg, progress=True)
        minutes = (time.perf_counter() - start) / 60
        after, _ = zero_shot_srcc(manifest, f"{run}/final")
        print(f"zero-shot SRCC on the held-out test split (n={n}): before {before:+.3f} -> after {after:+.3f} "
              f"(gain {after - before:+.3f}) after {steps} steps on {workers} workers in {minutes:.1f} min")
        return {"train_images": images, "test_images": n, "steps": steps, "workers": workers,
                "wall_minutes": round(minutes, 2), "fit_seconds": round(summary.seconds, 1),
                "srcc_before": round(before, 4), "srcc_after": round(after, 4), "gain": round(after - before, 4)}

    return measure


# ----------------------------------------------------------------------------------------- (a) and (b)


def local_index(corpus: str) -> pa.Table:
    """The driver-side index of a small corpus (benchmark only; the run builds it with Ray Data)."""
    from uniqa.training.ingest import group_texts

    table = pq.read_table(corpus).sort_by("image_id")
    ids = table["image_id"].to_pylist()
    starts = [i for i in range(len(ids)) if i == 0 or ids[i] != ids[i - 1]] + [len(ids)]
    return pa.concat_tables([group_texts(table.slice(a, b - a)) for a, b in zip(starts, starts[1:])])


class BatchSet:
    """A map-style torch dataset of whole micro-batches of the seeded stream (the plain loop's input)."""

    def __init__(self, index: pa.Table, cfg: PretrainConfig, epochs: int, size: int):
        from uniqa.training.ingest import expand_epochs

        rows = expand_epochs(index, seed=cfg.seed, epochs=epochs, source_weights=cfg.sources.as_dict())
        self.rows = rows.sort_by("order")
        self.cfg, self.size = cfg, size

    def __len__(self) -> int:
        return len(self.rows) // self.cfg.micro_batch

    def __getitem__(self, i: int) -> dict:
        import torch

        from uniqa.training.ingest import make_views

        chunk = self.rows.slice(i * self.cfg.micro_batch, self.cfg.micro_batch)
        batch = {c: np.array(chunk[c].to_pylist(), dtype=object if c in ("image_uri", "text") else np.int64)
                 for c in chunk.column_names}
        out = make_views(batch, model=self.cfg.model, size=self.size, view=self.cfg.view, flip=self.cfg.flip,
                         max_pixels=self.cfg.max_pixels)
        return {k: torch.from_numpy(v) for k, v in out.items()}


def loader(index, cfg, epochs, size, workers: int = 1):
    from torch.utils.data import DataLoader

    return DataLoader(BatchSet(index, cfg, epochs, size), batch_size=None, num_workers=workers,
                      persistent_workers=False)


def step_times(run: str) -> list[float]:
    with open(f"{run}/metrics.jsonl") as f:
        times = [json.loads(line)["time"] for line in f if line.strip()]
    return list(np.diff(times))


def compare(work: str, steps: int):
    """Set up once (sample, corpus, its index); returns ``measure()``: (a) and (b) into fresh run folders."""
    from uniqa.runtime import init_ray
    from uniqa.training.loop import Plan, Worker, train
    from uniqa.training.run import image_size, run_pretrain

    manifest = sample_manifest(work)
    training_corpus(manifest, f"{work}/corpus")
    cfg = PretrainConfig(**{**RECIPE, "warmup_steps": 5}, steps=steps, num_workers=1, cpus_per_worker=1.0,
                         decode_cpus=0.5, checkpoint_every=steps)  # threads: the policy's (1 CPU -> 1)
    index = local_index(f"{work}/corpus")
    size, images = image_size(cfg.model), len(index)
    epochs = -(-steps * cfg.batch_size // images)
    runs = iter(range(1000))

    def measure() -> dict:
        k = next(runs)
        # (a1) plain single-process loop, DataLoader with one worker process for decoding
        plan = Plan(run=f"{work}/plain{k}", model_name=cfg.model, pretrained=None, images=images, total_steps=steps)
        os.makedirs(plan.run, exist_ok=True)
        start = time.perf_counter()
        train(cfg, plan, Worker(), lambda: iter(loader(index, cfg, epochs, size)))
        plain = time.perf_counter() - start
        # (a2) the same through Ray Train, one worker
        init_ray()
        summary = run_pretrain(f"{work}/corpus", f"{work}/ray{k}", cfg, progress=False)
        ray_fit = summary.seconds
        plain_step = statistics.median(step_times(plan.run)[5:])
        ray_step = statistics.median(step_times(f"{work}/ray{k}")[5:])
        result = {"steps": steps, "batch": cfg.batch_size, "threads": summary.details["threads"],
                  "plain_seconds": round(plain, 1), "ray_seconds": round(ray_fit, 1),
                  "plain_step_ms": round(1000 * plain_step, 1), "ray_step_ms": round(1000 * ray_step, 1),
                  "overhead_ratio_steady": round(ray_step / plain_step, 3),
                  "overhead_ratio_wall": round(ray_fit / plain, 3),
                  "plain_images_per_s": round(cfg.batch_size / plain_step, 1),
                  "ray_images_per_s": round(cfg.batch_size / ray_step, 1)}
        result.update(ingest(index, cfg, epochs, size, f"{work}/ingest{k}"))
        print(json.dumps(result, indent=2), flush=True)
        return result

    return measure


def ingest(index, cfg: PretrainConfig, epochs: int, size: int, run: str) -> dict:
    """(b) Ray Data stream alone vs a torch DataLoader (one worker process) over the same batch functions."""
    import ray
    import torch

    from uniqa.training.dataset import training_dataset
    from uniqa.training.loop import Plan

    plan = Plan(run=run, model_name=cfg.model, pretrained=None, images=len(index), total_steps=1)
    os.makedirs(run, exist_ok=True)
    start = time.perf_counter()
    ds = training_dataset(ray.data.from_arrow(index), cfg, plan, epochs, size)
    n = 0
    for batch in ds.iter_torch_batches(batch_size=cfg.micro_batch, drop_last=True,
                                       dtypes={"image": torch.uint8, "tokens": torch.int64, "order": torch.int64}):
        n += len(batch["order"])
    ray_s = time.perf_counter() - start
    start = time.perf_counter()
    m = sum(len(b["order"]) for b in loader(index, cfg, epochs, size))
    dl_s = time.perf_counter() - start
    return {"ingest_images": n, "ray_data_images_per_s": round(n / ray_s, 1),
            "dataloader_images_per_s": round(m / dl_s, 1), "ray_data_seconds": round(ray_s, 1),
            "dataloader_seconds": round(dl_s, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--learns", action="store_true", help="zero-shot SRCC before/after pre-training")
    p.add_argument("--steps", type=int, default=None,
                   help=f"optimiser steps (default 60; --learns: {LEARNS['steps']})")
    p.add_argument("--workers", type=int, default=2, help="--learns: Ray Train workers (default 2)")
    p.add_argument("--model", default=LEARNS["model"], help=f"--learns: model (default {LEARNS['model']})")
    p.add_argument("--work", default=None, help="work folder (default: a temporary one)")
    add_busy_argument(p)
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or tmp
        if args.learns:
            measure, headline = learns(work, args.steps or LEARNS["steps"], args.workers, args.model), "gain"
        else:
            measure, headline = compare(work, args.steps or 60), "overhead_ratio_steady"
        side_by_side(measure, args.busy, [headline], seconds=args.busy_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
