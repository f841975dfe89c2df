"""Sweep throughput: the same 8-trial adapter sweep through Ray Tune at concurrency 1 and 2 and as a plain loop in
one process, in one run -> Tune's overhead over the plain loop, the concurrency speed-up, and trials per minute.

    .venv/bin/python benchmarks/tune.py                          # sample corpus, random-init uniqa-tiny
    .venv/bin/python benchmarks/tune.py --manifest M --features F --model MODEL --trials 16 --concurrency 1,4
    .venv/bin/python benchmarks/tune.py --busy 1                 # idle, then beside a CPU-burning process

Both sweeps draw the same configs (same seed) and run every trial to the end (FIFO scheduler, fixed epochs), so
they do the same work and only the concurrency differs; the plain loop then trains the configs of the first sweep's
table one after the other in this process (``train_adapter``, the call a trial makes, 1 torch thread as a 1-CPU
trial has), with no Tune, no actors and no reports. Trials train on cached features (computed once into --work when
--features is not given; not timed); a 2-trial sweep warms Tune up first (not timed). Ray is started once (--cpus,
default 2) and shared. Each trial runs torch with the thread policy's count (the CPUs its trial reserves, at least 1).

The headline is ``tune_over_plain``: the first concurrency level's wall time over the plain loop's, Tune's cost per
sweep like the other benchmarks' Ray / bare ratios. ``--busy N`` runs everything again beside N CPU-burning
processes and prints both side by side. The concurrency speed-up is printed too but is no headline: beside N busy
processes on C cores, k trials get at most C k / (k + N) cores (the kernel shares a core per runnable process), so
with C = 2 and N = 1 concurrency 2 can be at most 1.33x faster than 1, against 2x idle.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from neighbours import add_busy_argument, side_by_side  # noqa: E402


def plain_loop(manifest: str, features: str, model: str, space: dict):
    """-> ``run(sweep)``: train the configs of a finished sweep's table one after the other in this process, as
    its trials did (same data, seeds and threads), and return how many."""
    import pyarrow.parquet as pq
    import torch

    from uniqa.tuning.adapter import AdapterSweep, train_adapter
    from uniqa.tuning.config import TuneConfig

    cfg = TuneConfig(base={"model": model}, search_space=space, num_samples=1)
    data = AdapterSweep.preflight(manifest, features, None, cfg).load(None)
    data.threads = 1  # a 1-CPU trial's count (the thread policy's)
    val = {"val": (torch.from_numpy(data.val), data.val_mos)}

    def run(sweep: str) -> int:
        rows = pq.read_table(f"{sweep}/results.parquet").to_pylist()
        for row in rows:
            train_adapter({name: row[f"config_{name}"] for name in space}, data, val, lambda _: None)
        return len(rows)

    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", help="manifest with mos_norm and split_0 (default: the sample corpus, KADID)")
    p.add_argument("--features", help="its feature cache (default: computed into --work)")
    p.add_argument("--model", default="uniqa-tiny")
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--concurrency", default="1,2", help="comma-separated concurrency levels")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--work", help="work folder (default: a temporary one)")
    add_busy_argument(p)
    args = p.parse_args(argv)

    from uniqa.runtime import init_ray
    from uniqa.tuning.config import SchedulerConfig, TuneConfig
    from uniqa.tuning.sweep import run_tune

    work = args.work or tempfile.mkdtemp(prefix="bench-tune-")
    init_ray(num_cpus=args.cpus)
    manifest, features = args.manifest, args.features
    if manifest is None:
        from uniqa.data.prepare import prepare
        from uniqa.data.sample import build_sample

        if not os.path.exists(f"{work}/sample"):
            build_sample(f"{work}/sample", seed=0)
        manifest = f"{work}/manifest"
        if not os.path.exists(manifest):
            prepare("kadid10k", f"{work}/sample/iqa", manifest)
    if features is None:
        from uniqa.features.config import FeaturesConfig
        from uniqa.features.run import run_features

        features = f"{work}/features"
        start = time.perf_counter()
        run_features(manifest, features, FeaturesConfig(model=args.model, train_views=2), progress=False)
        print(f"features (once, not timed below): {time.perf_counter() - start:.1f} s")
    space = {"lr": {"loguniform": [1e-4, 1e-2]}, "batch_size": {"choice": [16, 32]}, "hidden": {"choice": [8, 32]},
             "prompt_set": {"choice": ["single", "ensemble"]}, "train_views": {"choice": [1, 2]},
             "weight_decay": {"choice": [0.0, 1e-4]}, "epochs": args.epochs}
    levels = [int(c) for c in args.concurrency.split(",")]
    runs = iter(range(1000))
    # the first sweep of a process pays Tune's imports and set-up: a 2-trial one, not timed, so that the first timed
    # level does not carry it
    run_tune(manifest, features, None, f"{work}/warm-up-{time.time_ns()}",
             TuneConfig(base={"model": args.model}, search_space={**space, "epochs": 1}, num_samples=2,
                        max_concurrent=1, scheduler=SchedulerConfig(kind="fifo")), progress=False)

    plain = plain_loop(manifest, features, args.model, space)

    def measure() -> dict:
        k, seconds, figures = next(runs), {}, {}
        for level in levels:
            cfg = TuneConfig(base={"model": args.model}, search_space=space, num_samples=args.trials,
                             max_concurrent=level, scheduler=SchedulerConfig(kind="fifo"))
            start = time.perf_counter()
            summary = run_tune(manifest, features, None, f"{work}/r{k}-c{level}", cfg, progress=False)
            seconds[level] = time.perf_counter() - start
            assert summary.rows_out == args.trials and not summary.rows_with_errors
            figures[f"trials_per_min_c{level}"] = 60 * args.trials / seconds[level]
            print(f"concurrency {level}: {args.trials} trials in {seconds[level]:.1f} s = "
                  f"{figures[f'trials_per_min_c{level}']:.1f} trials/min (threads per trial: "
                  f"{summary.details.get('threads')})")
        for level in levels[1:]:
            figures[f"ratio_c{levels[0]}_over_c{level}"] = seconds[levels[0]] / seconds[level]
            print(f"wall-clock ratio concurrency {levels[0]} / {level}: {seconds[levels[0]] / seconds[level]:.2f}x")
        start = time.perf_counter()
        trials = plain(f"{work}/r{k}-c{levels[0]}")
        bare = time.perf_counter() - start
        figures["trials_per_min_plain"] = 60 * trials / bare
        figures["tune_over_plain"] = seconds[levels[0]] / bare
        print(f"plain loop: {trials} trials in {bare:.1f} s; Tune at concurrency {levels[0]} / plain: "
              f"{figures['tune_over_plain']:.2f}x")
        return figures

    side_by_side(measure, args.busy, ["tune_over_plain"], seconds=args.busy_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
