"""Feature-cache throughput, one run, same model, views and images: (b) a bare batched torch DataLoader loop that
decodes, cuts the K training views + the test views of each image and encodes them, vs (c) ``uniqa features``'
run function on Ray Data (decode tasks, encoder actors, Parquet part files).

    python benchmarks/features.py [--images 10000] [--model uniqa-tiny] [--train-views 4] [--test-views crops10]
                                  [--workers 0,1,2] [--work DIR] [--busy 1]

Prints images/s of each, end to end (model loading included) and steady (the loop without model loading; (c):
its marginal rate, timed once more on the first half of the images: see score.py's timed_stage), and the ratio c/b
(goal >= 0.95 steady). Without a GPU, (c) runs one actor per core at 0.5 CPU each (the thread policy gives
each 1 torch thread) and (b) gets as many torch threads as (c)'s actors have in all. ``--busy N`` measures both
again beside N CPU-burning processes and prints the two side by side. Shares the image maker, the bare loop and
the stage timing with benchmarks/score.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from neighbours import add_busy_argument, side_by_side  # noqa: E402
from score import bare_loop, make_images, probe_workers, report, timed_stage, timing, uris_of  # noqa: E402


class FeatureViewsDataset:
    """torch Dataset: i -> every view of image i (uint8 [K + T, S, S, 3]), decoded and cut like the stage."""

    def __init__(self, uris, ids, cfg, size: int):
        self.uris, self.ids, self.cfg, self.size = uris, ids, cfg, size

    def __len__(self):
        return len(self.uris)

    def __getitem__(self, i):
        from uniqa.data.images import load_image
        from uniqa.features.batches import image_feature_views

        image = load_image(self.uris[i], self.cfg.decode_config())
        return image_feature_views(image, self.ids[i], self.size, self.cfg.train_views, self.cfg.test_views,
                                   self.cfg.seed)


def bare(cfg, uris: list[str], ids: list[str], workers: int, threads: int) -> tuple[float, float]:
    """(b) load the frozen model; DataLoader of every image's views; one encoder call per batch of images."""
    from uniqa.models.encoder import ImageEncoder, frozen_model

    start = time.perf_counter()
    frozen = frozen_model(cfg.model, cfg.pretrained, cfg.seed)
    model, _ = frozen.load()
    encoder = ImageEncoder(model, cfg.views_per_pass)
    data = FeatureViewsDataset(uris, ids, cfg, frozen.image_size)
    loop = time.perf_counter()
    bare_loop(data, cfg.batch_size, workers, threads, "cpu",
              lambda views: encoder(views.reshape(-1, *views.shape[2:])).numpy())
    end = time.perf_counter()
    return end - start, end - loop


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--model", default="uniqa-tiny")
    ap.add_argument("--pretrained", default=None)
    ap.add_argument("--train-views", type=int, default=4)
    ap.add_argument("--test-views", default="crops10")
    ap.add_argument("--batch-size", type=int, default=16, help="images per encoder call (both sides)")
    ap.add_argument("--workers", default="", help="DataLoader worker counts to try for (b), best kept "
                    "(default: 0,1,cores)")
    ap.add_argument("--work", default="runs/bench_features", help="folder for the generated images and outputs")
    add_busy_argument(ap)
    args = ap.parse_args(argv)
    from uniqa.data.views import VIEW_COUNTS
    from uniqa.features.config import FeaturesConfig
    from uniqa.features.run import run_features
    from uniqa.runtime import init_ray, policy_threads

    work, cores = Path(args.work), os.cpu_count() or 1
    cfg = FeaturesConfig(model=args.model, pretrained=args.pretrained, train_views=args.train_views,
                         test_views=args.test_views, batch_size=args.batch_size, num_actors=cores, num_cpus=0.5,
                         decode_cpus=0.5, rows_per_file=256)
    threads = cores * policy_threads(cpus=cfg.num_cpus)  # (c)'s actors' threads in all
    manifest = make_images(work / f"n{args.images}", args.images)
    uris = uris_of(manifest)
    ids = [Path(u).stem for u in uris]  # make_images names each file after its image_id
    views = args.train_views + VIEW_COUNTS[args.test_views]
    print(f"{len(uris)} images x {views} views, model {args.model}; (c): {cores} actors x {cfg.num_cpus} CPU; "
          f"(b): {threads} torch threads")

    def measure() -> dict:
        best = probe_workers(lambda u, w: bare(cfg, u, ids[: len(u)], w, threads), uris, args.workers, cores)
        timings = {"b_dataloader": timing(len(uris), *bare(cfg, uris, ids, best, threads))}
        init_ray(num_cpus=cores)
        out = work / "out_c"
        total, steady, steady_n = timed_stage(lambda m, o: run_features(str(m), str(o), cfg, progress=False),
                                              manifest, out)
        timings["c_uniqa_features"] = timing(len(uris), total, steady, steady_n)
        return {**report(timings), "b_num_workers": best}

    result = side_by_side(measure, args.busy, ["c_over_b_steady"], seconds=args.busy_seconds)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
