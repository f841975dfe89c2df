"""Scoring throughput, one run, same model, heads, views and images: (a) a per-image loop as IQA toolboxes
do it, (b) a bare batched torch DataLoader loop, (c) ``uniqa score``'s run function on Ray Data; then the
driver's peak memory of (c) at two collection sizes (goal: flat).

    python benchmarks/score.py [--images 50000] [--memory-counts 5000,20000] [--model uniqa-tiny]
                               [--views crops10] [--batch-size 64] [--workers 0,1,2] [--a-images N] [--work DIR]
                               [--busy 1]

Prints images/s of each (end to end, model loading included; and steady state: the loops without model loading,
(c) its marginal rate, timed once more on the first half of the images: see timed_stage), the
ratios c/b (goal >= 0.95 steady) and c/a (goal >= 5), and the driver's peak RSS growth at each memory count.
(a) and (b) run with as many torch threads as (c)'s actors have in all (the thread policy gives each actor its
reserved CPUs, at least 1), so the loops and the pipeline use the same cores. ``--busy N`` measures (a)-(c)
again beside N CPU-burning processes and prints both side by side (the memory runs are idle only).
(c) runs on an already started Ray, as a job on a cluster does; its end-to-end time still includes Ray
Data's start, the actors' start (a fresh process importing torch + open_clip) and model loading, a fixed
cost that a large collection amortises, hence the default of 50,000 images. Without a GPU, (c) runs one
single-threaded actor per core (override with --actors / --actor-cpus / --decode-cpus).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from neighbours import add_busy_argument, side_by_side  # noqa: E402


def make_images(root: Path, n: int, size: int = 96, seed: int = 0) -> Path:
    """``n`` small JPEGs (smooth colour + grain) and a manifest ``root/manifest.parquet``; reused if present."""
    manifest = root / "manifest.parquet"
    if manifest.exists() and pq.read_metadata(manifest).num_rows == n:
        return manifest
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    uris = []
    for i in range(n):
        base = rng.integers(0, 256, 3) + np.linspace(0, 60, size)[:, None, None]
        arr = np.clip(base + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
        path = root / "images" / f"{i:06d}.jpg"
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=90)
        path.write_bytes(buf.getvalue())
        uris.append(str(path))
    pq.write_table(pa.table({"image_id": [f"{i:06d}" for i in range(n)], "image_uri": uris}), manifest)
    return manifest


def uris_of(manifest: Path) -> list[str]:
    return pq.read_table(manifest, columns=["image_uri"])["image_uri"].to_pylist()


def per_image_loop(cfg, uris: list[str], threads: int) -> tuple[float, float]:
    """(a) load model; for each image: decode, views, one forward pass. -> (end-to-end s, loop s)."""
    from dataclasses import replace

    import torch

    from uniqa.data.images import load_image
    from uniqa.data.views import VIEW_COUNTS, make_views
    from uniqa.runtime import torch_threads
    from uniqa.scoring.api import Scorer

    start = time.perf_counter()
    scorer = Scorer(replace(cfg, views_per_pass=VIEW_COUNTS[cfg.views]))  # one image's views, no padding
    loop = time.perf_counter()
    with torch_threads(threads), torch.inference_mode():
        for uri in uris:
            views = make_views(load_image(uri, scorer.decode), cfg.views, scorer.cfg.image_size, seed=cfg.seed)
            {h: s.item() for h, s in scorer.multihead(torch.from_numpy(views[None]).to(scorer.device)).items()}
    end = time.perf_counter()
    return end - start, end - loop


class ViewsDataset:
    """torch Dataset: path -> views (uint8 [V, S, S, 3]), decoded and cut like the pipeline does."""

    def __init__(self, uris, decode, protocol, size, seed):
        self.uris, self.decode, self.protocol, self.size, self.seed = uris, decode, protocol, size, seed

    def __len__(self):
        return len(self.uris)

    def __getitem__(self, i):
        from uniqa.data.images import load_image
        from uniqa.data.views import make_views

        return make_views(load_image(self.uris[i], self.decode), self.protocol, self.size, seed=self.seed)


def dataloader_loop(cfg, uris: list[str], workers: int, threads: int) -> tuple[float, float]:
    """(b) load model; DataLoader(batch_size, num_workers) of views; one forward pass per batch."""
    from uniqa.scoring.api import Scorer

    start = time.perf_counter()
    scorer = Scorer(cfg)
    data = ViewsDataset(uris, scorer.decode, cfg.views, scorer.cfg.image_size, cfg.seed)
    loop = time.perf_counter()
    bare_loop(data, cfg.batch_size, workers, threads, scorer.device,
              lambda views: {h: s.cpu().numpy() for h, s in scorer.multihead(views).items()})
    end = time.perf_counter()
    return end - start, end - loop


def bare_loop(data, batch_size: int, workers: int, threads: int, device: str, step) -> None:
    """The bare batched loop of (b) (and of benchmarks/features.py): a torch DataLoader of ``data`` (items: uint8
    arrays, stacked into batches), ``step(batch on device)`` per batch under ``threads`` torch threads."""
    import torch

    from uniqa.runtime import torch_threads

    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, num_workers=workers,
                                         collate_fn=lambda b: torch.from_numpy(np.stack(b)),
                                         pin_memory=device.startswith("cuda"))
    with torch_threads(threads), torch.inference_mode():
        for batch in loader:
            step(batch.to(device))


def probe_workers(run, uris: list[str], choices: str, cores: int) -> int:
    """The DataLoader worker count (of ``choices``, default 0,1,cores) with the best rate of ``run(uris,
    workers) -> (end-to-end s, loop s)`` on a 500-image probe."""
    probe, tried = uris[:500], {}
    for workers in [int(w) for w in (choices or f"0,1,{cores}").split(",")]:
        tried[workers] = len(probe) / run(probe, workers)[1]
        print(f"(b) probe: DataLoader num_workers={workers}: {tried[workers]:.1f} images/s")
    return max(tried, key=tried.get)


def ray_run(cfg, manifest: Path, out: Path, steady: bool = True) -> tuple[float, float, int]:
    """(c) ``run_score`` into a fresh ``out`` -> (end-to-end s, steady-state s, its images: see timed_stage)."""
    from uniqa.scoring.run import run_score

    return timed_stage(lambda m, o: run_score(str(m), str(o), cfg, progress=False), manifest, out, steady)


def first_half(manifest: Path) -> Path:
    """A manifest of the first half of ``manifest``'s rows, written beside it once."""
    half = manifest.with_name(f"{manifest.stem}-half.parquet")
    if not half.exists():
        table = pq.read_table(manifest)
        pq.write_table(table.slice(0, len(table) // 2), half)
    return half


def timed_stage(run, manifest: Path, out: Path, steady: bool = True) -> tuple[float, float, int]:
    """``run(manifest, out)`` (a stage's run function writing part files into ``out``, emptied first) ->
    (end-to-end s, steady-state s, images in it). Steady state is the marginal rate: ``run`` once more on the
    first half of the manifest, then the second half's images over the extra time the whole took. Both runs pay
    the same start (Ray Data, the actors' start and model load) and get the same head start from decode tasks
    that run ahead while the actors start (blocks of views wait in the object store), so the difference is the
    pipeline's steady rate, which the first files' times are not. ``steady`` False: (end-to-end s, 0, 0)."""
    import shutil

    def timed(m: Path) -> tuple[float, int]:
        shutil.rmtree(out, ignore_errors=True)
        wall_start, start = time.time(), time.perf_counter()
        summary = run(m, out)
        took = time.perf_counter() - start
        assert summary.complete and summary.rows_written == summary.rows_in, summary.line()
        first = min(p.stat().st_mtime for p in out.glob("part-*.parquet"))
        print(f"{summary.rows_written} images in {took:.1f} s, first output file after {first - wall_start:.1f} s "
              "(Ray Data start, actor start, model load)")
        return took, summary.rows_written

    total, n = timed(manifest)
    if not steady:
        return total, 0.0, 0
    half, n_half = timed(first_half(manifest))
    return total, total - half, n - n_half


class PeakRSS:
    """Samples this process's resident memory (VmRSS) every 20 ms; ``peak`` minus ``base`` = growth."""

    def __init__(self):
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=50000, help="images for the throughput comparison")
    ap.add_argument("--memory-counts", default="5000,20000", help="collection sizes for the driver memory check")
    ap.add_argument("--a-images", type=int, default=0, help="time (a) on the first N images only (0: all)")
    ap.add_argument("--model", default="uniqa-tiny")
    ap.add_argument("--pretrained", default=None)
    ap.add_argument("--views", default="crops10")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--workers", default="", help="DataLoader worker counts to try for (b), best kept "
                    "(default: 0,1,cores)")
    ap.add_argument("--actors", type=int, default=None, help="model actors in (c) (default: 1 with a GPU; "
                    "without, one per core: on a CPU, processes scale better than torch threads on small models)")
    ap.add_argument("--actor-cpus", type=float, default=None, help="CPUs reserved per model actor in (c) "
                    "(default: 1 with a GPU, else 0.5, so decode tasks fit beside the actors)")
    ap.add_argument("--decode-cpus", type=float, default=None, help="CPUs per decode task in (c) (default: as "
                    "--actor-cpus)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per CPU model actor in (c) "
                    "(default: Ray's, the actor's CPUs)")
    ap.add_argument("--rows-per-block", type=int, default=None, help="decode task size in (c) (default: auto)")
    ap.add_argument("--rows-per-file", type=int, default=1024, help="rows per output file in (c)")
    ap.add_argument("--memory-views", default="full", help="view protocol of the memory runs (full: fastest)")
    ap.add_argument("--work", default="runs/bench_score", help="folder for the generated images and outputs")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: a,b,c,memory")
    add_busy_argument(ap)
    args = ap.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from uniqa.runtime import init_ray, policy_threads
    from uniqa.scoring.config import ScoreConfig

    work, skip, cores = Path(args.work), set(filter(None, args.skip.split(","))), os.cpu_count() or 1
    gpu = _has_gpu()
    actors = args.actors or (1 if gpu else cores)
    actor_cpus = args.actor_cpus if args.actor_cpus is not None else 1.0 if gpu else 0.5
    cfg = ScoreConfig(model=args.model, pretrained=args.pretrained, views=args.views, batch_size=args.batch_size,
                      num_actors=actors, num_cpus=actor_cpus, rows_per_block=args.rows_per_block,
                      decode_cpus=args.decode_cpus if args.decode_cpus is not None else actor_cpus,
                      threads=args.threads,
                      rows_per_file=args.rows_per_file)  # the output files' times trace the steady rate
    threads = 1 if gpu else actors * policy_threads(args.threads, cpus=actor_cpus)  # (c)'s threads in all
    manifest = make_images(work / f"n{args.images}", args.images)
    uris = uris_of(manifest)
    print(f"{len(uris)} images, model {args.model}, views {args.views}, batch {args.batch_size}; (c): {actors} "
          f"actors x {actor_cpus} CPU, decode tasks {cfg.decode_cpus} CPU; (a), (b): {threads} torch threads")

    def measure() -> dict:
        result: dict = {}
        if "a" not in skip:
            a_uris = uris[: args.a_images] if args.a_images else uris
            result["a_per_image"] = timing(len(a_uris), *per_image_loop(cfg, a_uris, threads))
        if "b" not in skip:  # pick the fastest worker count on a probe, then time it on every image
            best = probe_workers(lambda u, w: dataloader_loop(cfg, u, w, threads), uris, args.workers, cores)
            result["b_dataloader"] = {**timing(len(uris), *dataloader_loop(cfg, uris, best, threads)),
                                      "num_workers": best}
        init_ray(num_cpus=max(cores, int(actor_cpus * actors + cfg.decode_cpus + 0.999)))  # actors + a decode task
        if "c" not in skip:
            total, steady, steady_n = ray_run(cfg, manifest, work / "out_c")
            result["c_uniqa_score"] = timing(len(uris), total, steady, steady_n)
        return report(result)

    result = side_by_side(measure, args.busy, ["c_over_b_steady"], seconds=args.busy_seconds)
    if "memory" not in skip:
        memory(cfg, work, [int(c) for c in args.memory_counts.split(",")], args.memory_views, result)
    print(json.dumps(result))
    return result


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def timing(images: int, seconds: float, steady_seconds: float, steady_images: int | None = None) -> dict:
    return {"images": images, "seconds": seconds, "steady_images": steady_images or images,
            "steady_seconds": steady_seconds}


def memory(cfg, work: Path, counts: list[int], views: str, result: dict) -> None:
    """The driver's peak RSS while ``uniqa score`` runs on collections of each size (manifest input)."""
    from dataclasses import replace

    mem_cfg = replace(cfg, views=views, batch_size=256)
    for n in counts:
        manifest = make_images(work / f"n{n}", n, size=48)
        with PeakRSS() as rss:
            took = ray_run(mem_cfg, manifest, work / f"out_mem{n}", steady=False)[0]
        growth = (rss.peak - rss.base) / 2**20
        result[f"memory_{n}"] = {"driver_rss_growth_mb": growth, "driver_peak_rss_mb": rss.peak / 2**20,
                                 "seconds": took}
        print(f"memory {n:>6} images ({views}): driver peak RSS {rss.peak / 2**20:7.1f} MB, "
              f"growth during the run {growth:6.1f} MB, {n / took:7.1f} images/s end to end")


def report(timings: dict, goal: float = 0.95) -> dict:
    """Prints images/s end to end (model loading included) and steady (loading excluded) of each of
    ``timings`` (keys ``a_...``, ``b_...``, ``c_...`` as :func:`timing` gives them) and the ratios; returns them
    as a flat dict (``a_e2e``, ``a_steady``, ..., ``c_over_b_steady``, ``c_over_a_steady``, ...)."""
    flat: dict = {}
    for key, r in timings.items():
        steady = r["steady_images"] / r["steady_seconds"] if r["steady_seconds"] > 0 else float("nan")
        flat[f"{key[0]}_e2e"], flat[f"{key[0]}_steady"] = r["images"] / r["seconds"], steady
        print(f"({key[0]}) {key[2:]:12s} {r['images']:6d} images: end to end {flat[f'{key[0]}_e2e']:8.1f} "
              f"images/s   steady {steady:8.1f} images/s")
    for c, other, want in (("c", "b", goal), ("c", "a", 5)):
        if f"{c}_e2e" in flat and f"{other}_e2e" in flat:
            for kind in ("e2e", "steady"):
                flat[f"{c}_over_{other}_{kind}"] = flat[f"{c}_{kind}"] / flat[f"{other}_{kind}"]
            print(f"{c}/{other} = {flat[f'{c}_over_{other}_e2e']:.2f} end to end, "
                  f"{flat[f'{c}_over_{other}_steady']:.2f} steady (goal >= {want})")
    return flat


if __name__ == "__main__":
    main()
