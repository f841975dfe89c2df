"""Corpus build at two sizes: the driver's peak memory must not grow with the corpus (issue: nothing
proportional to the dataset in the driver).

    python benchmarks/corpus.py [--rows 20000,200000] [--comments-per-image 2] [--work DIR] [--shuffle auto|sort|hash]
                                [--busy 1]

For each size N it writes synthetic inputs (a manifest of N labelled images, N caption rows, N x
--comments-per-image purified comments with some duplicates), then runs ``uniqa.corpus.run_corpus`` in a fresh
Python process (a fresh local Ray) and prints that driver's peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) just
after Ray started and after the build, the pairs written and pairs/s; then the ratio of the peaks of the largest
and the smallest build (goal: <= 1.10). ``--busy 1`` builds every size again beside a CPU-burning process and prints
both side by side (benchmarks/neighbours.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/
from neighbours import add_busy_argument, side_by_side  # noqa: E402

LEVELS = ("bad", "poor", "fair", "good", "perfect")
WORDS = "sharp soft noisy clean bright dark warm cool vivid muted balanced tilted framed crisp grainy".split()


def make_inputs(root: str, n: int, comments_per_image: int, seed: int = 0) -> dict:
    """Manifest, captions and purified-comment folders for ``n`` images under ``root`` (reused if present)."""
    import numpy as np
    import pyarrow as pa

    from uniqa.schema import CAPTIONS, MANIFEST, PURIFIED, SPLIT_COLUMNS
    from uniqa.tables import write_table

    paths = {k: os.path.join(root, k) for k in ("manifest", "captions", "purified")}
    if os.path.exists(os.path.join(root, "_done")):
        return paths
    rng = np.random.default_rng(seed)
    ids = [f"img{i:08d}" for i in range(n)]
    mos = rng.random(n)
    levels = [LEVELS[min(int(m * 5), 4)] for m in mos]
    manifest = {"image_id": ids, "image_uri": [f"s3://bucket/images/{i}.jpg" for i in ids],
                "dataset": ["synthetic"] * n, "task": ["quality"] * n, "mos": mos, "mos_norm": mos,
                "level": levels, **{c: ["train"] * n for c in SPLIT_COLUMNS}}
    write_table(pa.table(manifest), paths["manifest"], MANIFEST, rows_per_shard=50_000)

    def sentence(k: int) -> str:
        return " ".join(rng.choice(WORDS, size=k))

    captions = {"image_id": ids, "task": ["quality"] * n,
                "caption": [f"The quality of this image is {lv}: {sentence(8)}." for lv in levels],
                "backend": ["attributes"] * n, "model": ["attributes-v1"] * n, "prompt_version": ["v1"] * n,
                "error": [None] * n}
    write_table(pa.table(captions), paths["captions"], CAPTIONS, rows_per_shard=50_000)
    m = n * comments_per_image
    comment_ids = np.repeat(ids, comments_per_image)
    texts = [sentence(int(k)) for k in rng.integers(3, 20, m)]
    texts = [texts[i - 1] if i % 10 == 9 else t for i, t in enumerate(texts)]  # every 10th repeats the previous
    purified = {"image_id": comment_ids, "comment": texts, "rank": np.tile(np.arange(1, comments_per_image + 1), n),
                "similarity": rng.random(m), "relevance_rank": np.ones(m, np.int64),
                "informativeness_rank": np.ones(m, np.int64), "words": np.zeros(m, np.int64),
                "score": np.full(m, 2, np.int64)}
    write_table(pa.table(purified), os.path.join(paths["purified"], "kept"), PURIFIED, rows_per_shard=50_000)
    open(os.path.join(root, "_done"), "w").close()
    return paths


def child(paths: dict, out: str, shuffle: str) -> None:
    """One corpus build in this (fresh) process; prints one JSON line."""
    import resource

    import ray

    from uniqa.corpus import CorpusConfig, run_corpus
    from uniqa.runtime import local_ray_options

    ray.init(**local_ray_options())  # a private Ray on loopback, never a cluster left running on the machine
    rss_ray = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    shutil.rmtree(out, ignore_errors=True)  # measured from scratch (a finished one would be found done)
    start = time.perf_counter()
    summary = run_corpus([paths["manifest"]], [paths["captions"]], [paths["purified"]], out,
                         CorpusConfig(shuffle=shuffle), progress=False)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open("/proc/self/status") as f:  # VmHWM: this process image's own peak (reset at exec), for comparison
        hwm = next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
    print(json.dumps({"rss_after_ray_kib": rss_ray, "rss_peak_kib": rss, "vm_hwm_kib": hwm, "seconds": seconds,
                      "pairs": summary.rows_written, "rows_in": summary.rows_in, "complete": summary.complete,
                      "partitions": summary.details["partitions"]}))


def run_self(argv: list[str], what: str) -> str:
    """Run this script with ``argv`` in a fresh process; its last JSON line."""
    proc = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        sys.exit(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return lines[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="20000,200000", help="caption rows (= images) of each build, comma-separated")
    p.add_argument("--comments-per-image", type=int, default=2)
    p.add_argument("--shuffle", default="auto", help="CorpusConfig.shuffle: auto | sort | hash")
    p.add_argument("--work", help="folder for inputs and outputs (default: a temporary folder)")
    p.add_argument("--child", help=argparse.SUPPRESS)  # JSON {paths, out}: run one build in this process
    p.add_argument("--make", help=argparse.SUPPRESS)  # JSON {root, n}: write one size's inputs in this process
    add_busy_argument(p)
    args = p.parse_args()
    if args.child:
        spec = json.loads(args.child)
        child(spec["paths"], spec["out"], args.shuffle)
        return
    if args.make:
        spec = json.loads(args.make)
        print(json.dumps(make_inputs(spec["root"], spec["n"], args.comments_per_image)))
        return
    work = args.work or tempfile.mkdtemp(prefix="uniqa-corpus-bench-")
    specs = {}
    for n in [int(x) for x in args.rows.split(",")]:
        t = time.perf_counter()
        # Inputs are made in a process of their own: Linux carries a process's peak RSS across fork + exec, so
        # a parent that had built the inputs would pass its peak on to the measured build.
        made = run_self(["--make", json.dumps({"root": os.path.join(work, f"in-{n}"), "n": n}),
                         "--comments-per-image", str(args.comments_per_image)], f"inputs of {n}")
        specs[n] = json.dumps({"paths": json.loads(made), "out": os.path.join(work, f"corpus-{n}")})
        print(f"[{n} images] inputs ready in {time.perf_counter() - t:.1f} s", flush=True)

    def measure() -> dict:
        results, figures = {}, {}
        for n, spec in specs.items():
            r = results[n] = json.loads(run_self(["--child", spec, "--shuffle", args.shuffle], f"build of {n}"))
            print(f"[{n} images] {r['rows_in']} candidate texts -> {r['pairs']} pairs in {r['seconds']:.1f} s = "
                  f"{r['pairs'] / r['seconds']:,.0f} pairs/s ({r['rows_in'] / r['seconds']:,.0f} input texts/s), "
                  f"{r['partitions']} partition(s), complete={r['complete']}; driver peak RSS "
                  f"{r['rss_peak_kib'] / 1024:.0f} MiB (after Ray start {r['rss_after_ray_kib'] / 1024:.0f} MiB; "
                  f"VmHWM {r['vm_hwm_kib'] / 1024:.0f} MiB)",
                  flush=True)
            figures.update({f"seconds_{n}": r["seconds"], f"pairs_per_s_{n}": r["pairs"] / r["seconds"],
                            f"rss_peak_mib_{n}": r["rss_peak_kib"] / 1024,
                            f"rss_after_ray_mib_{n}": r["rss_after_ray_kib"] / 1024,
                            f"vm_hwm_mib_{n}": r["vm_hwm_kib"] / 1024})
        small, large = min(results), max(results)
        ratio = figures["rss_ratio"] = results[large]["rss_peak_kib"] / results[small]["rss_peak_kib"]
        print(f"driver peak RSS ratio {large} / {small} images: {ratio:.3f} (goal <= 1.10: "
              f"{'met' if ratio <= 1.10 else 'NOT met'})")
        return figures

    side_by_side(measure, args.busy, headline=["rss_ratio"], seconds=args.busy_seconds)


if __name__ == "__main__":
    main()
