"""Curation at scale: ``uniqa filter``'s run function on synthetic scores of two sizes, each in a fresh subprocess
(its own local Ray), printing the driver's peak RSS (``ru_maxrss``) of each, their ratio (goal: within 10%,
i.e. nothing in the driver grows with the row count) and rows/s.

    python benchmarks/filter.py [--rows 2000000,200000] [--rule top|where] [--groups 50] [--work DIR]
                                [--cpus 2] [--manifest] [--busy 1]

The scores are written once per size under --work (reused when present): ``files`` Parquet files of
``image_id, image_uri, quality, aesthetics, error, model_checksum``, one row in 53 a scoring error, the images
spread over --groups folders. The default rule is the heaviest: --top-fraction 0.3 --by quality
--group-by folder (per-group KLL sketches, then the decisions). --manifest also joins a manifest of every
image (hash-partitioned by image_id first). ``--busy 1`` measures every size again beside a CPU-burning process
and prints both side by side (benchmarks/neighbours.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/
from neighbours import add_busy_argument, side_by_side  # noqa: E402

ROWS_PER_FILE = 100_000


def make_scores(folder: Path, n: int, groups: int, seed: int = 0) -> Path:
    """``n`` synthetic score rows in files of ROWS_PER_FILE (reused if complete)."""
    done = folder / "_complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for start in range(0, n, ROWS_PER_FILE):
        idx = np.arange(start, min(n, start + ROWS_PER_FILE))
        q, a = rng.normal(0.5, 0.15, len(idx)), rng.random(len(idx))
        bad = idx % 53 == 0
        q[bad], a[bad] = np.nan, np.nan
        error = pa.array(np.where(bad, "cannot decode image", None), pa.string())
        table = pa.table({
            "image_id": pa.array([f"{i:09d}" for i in idx]),
            "image_uri": pa.array([f"s3://bucket/f{i % groups:03d}/{i:09d}.jpg" for i in idx]),
            "quality": pa.array(q, mask=bad), "aesthetics": pa.array(a, mask=bad), "error": error,
            "model_checksum": pa.array(["0" * 32] * len(idx)),
        })
        pq.write_table(table, folder / f"part-{start // ROWS_PER_FILE:05d}.parquet")
    done.write_text(str(n))
    return folder


def make_manifest(scores: Path, folder: Path) -> Path:
    """A manifest of every scored image (dataset by folder), written file by file next to the scores."""
    if (folder / "_complete").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for file in sorted(scores.glob("part-*.parquet")):
        t = pq.read_table(file, columns=["image_id", "image_uri"])
        n = len(t)
        pq.write_table(t.append_column("dataset", pa.array([f"d{i % 7}" for i in range(n)]))
                        .append_column("task", pa.array(["quality"] * n)), folder / file.name)
    (folder / "_complete").write_text("ok")
    return folder


def child(scores: str, manifest: str | None, out: str, rule: str, cpus: int) -> None:
    """One measured run (in a fresh process): prints one JSON line."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from uniqa.curation.config import FilterConfig
    from uniqa.curation.run import run_filter
    from uniqa.runtime import local_ray_options

    ray.init(**local_ray_options(cpus, object_store_memory=1024 * 2**20))  # private, on loopback
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cfg = (FilterConfig(top_fraction=0.3, by="quality", group_by="folder") if rule == "top"
           else FilterConfig(where="quality >= 0.6 and aesthetics >= 0.5"))
    shutil.rmtree(out, ignore_errors=True)  # measured from scratch (a finished one would be found done)
    start = time.perf_counter()
    summary = run_filter(scores, manifest, out, cfg, progress=False)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": summary.rows_in, "rows_out": summary.rows_out, "kept": summary.details["kept"],
                      "groups": len(summary.details["thresholds"]), "seconds": seconds,
                      "rows_per_s": summary.rows_in / seconds, "driver_peak_rss_mb": peak / 1024,
                      "driver_rss_after_ray_init_mb": base / 1024, "complete": summary.complete}))
    ray.shutdown()


def run_child(scores: Path, manifest: Path | None, out: Path, rule: str, cpus: int) -> dict:
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    cmd = [sys.executable, __file__, "--child", str(scores), str(manifest or ""), str(out), "--rule", rule,
           "--cpus", str(cpus)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode or not lines:
        sys.exit(f"child failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="2000000,200000", help="comma-separated sizes; the first is compared to the rest")
    p.add_argument("--rule", choices=("top", "where"), default="top")
    p.add_argument("--groups", type=int, default=50)
    p.add_argument("--cpus", type=int, default=2, help="logical CPUs of each child's local Ray")
    p.add_argument("--manifest", action="store_true", help="also join a manifest of every image")
    p.add_argument("--work", default=None, help="folder for the synthetic scores and outputs (default: a temp dir)")
    p.add_argument("--child", nargs=3, metavar=("SCORES", "MANIFEST", "OUT"), help=argparse.SUPPRESS)
    add_busy_argument(p)
    args = p.parse_args()
    if args.child:
        scores, manifest, out = args.child
        child(scores, manifest or None, out, args.rule, args.cpus)
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="uniqa-filter-bench-"))
    sizes = [int(x) for x in args.rows.split(",")]
    inputs = {}
    for n in sizes:
        scores = make_scores(work / f"scores_{n}_{args.groups}", n, args.groups)
        inputs[n] = scores, make_manifest(scores, work / f"manifest_{n}_{args.groups}") if args.manifest else None
    # the first size against each other one: "rss_ratio" in the default case of two sizes
    ratio_keys = {other: "rss_ratio" if len(sizes) == 2 else f"rss_ratio_{other}" for other in sizes[1:]}

    def measure() -> dict:
        results, figures = {}, {}
        for n, (scores, manifest) in inputs.items():
            r = results[n] = run_child(scores, manifest, work / f"out_{n}", args.rule, args.cpus)
            print(f"{n:>9} rows: {r['seconds']:6.1f} s = {r['rows_per_s']:9.0f} rows/s; driver peak RSS "
                  f"{r['driver_peak_rss_mb']:7.1f} MB (after ray.init {r['driver_rss_after_ray_init_mb']:.1f} MB); "
                  f"kept {r['kept']}, {r['groups']} groups, complete={r['complete']}", flush=True)
            figures.update({f"{k}_{n}": r[k] for k in ("seconds", "rows_per_s", "driver_peak_rss_mb",
                                                       "driver_rss_after_ray_init_mb")})
        for other, key in ratio_keys.items():
            ratio = figures[key] = results[sizes[0]]["driver_peak_rss_mb"] / results[other]["driver_peak_rss_mb"]
            print(f"driver peak RSS ratio {sizes[0]} / {other} rows = {ratio:.3f} (goal: within 10%, 0.9-1.1)")
        return figures

    side_by_side(measure, args.busy, headline=list(ratio_keys.values()), seconds=args.busy_seconds)


if __name__ == "__main__":
    main()
