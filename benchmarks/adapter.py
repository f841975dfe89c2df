"""Adapter training: time per epoch on cached features vs re-encoding the images every epoch (the exact mode,
what the reference code does), same model, same views, one run -> the ratio.

    .venv/bin/python benchmarks/adapter.py                       # sample corpus, random-init uniqa-small
    .venv/bin/python benchmarks/adapter.py --manifest M --model ViT-B-16-quickgelu --pretrained W --epochs 2
    .venv/bin/python benchmarks/adapter.py --busy 1             # idle, then beside a CPU-burning process

Both modes run the same training loop (:func:`uniqa.adapters.training.train_head`) on split_0's training side,
with the test features computed once (they are the same in both modes). The cached epoch is pure torch on the
features; the exact epoch decodes, crops and encodes every training image again. The one-off cost of the cache
(encoding K training views + the test views of every image, made once) is printed beside it. Training runs with
the thread policy's count (1 thread in a driver for a small model; ``--threads`` overrides).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from neighbours import add_busy_argument, side_by_side  # noqa: E402


def sample_manifest(root: str) -> str:
    from uniqa.data.prepare import prepare
    from uniqa.data.sample import build_sample

    build_sample(os.path.join(root, "sample"), seed=0)
    prepare("kadid10k", os.path.join(root, "sample", "iqa"), os.path.join(root, "manifest"))
    return os.path.join(root, "manifest")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", help="manifest with mos_norm and split_0 (default: the sample corpus, built here)")
    p.add_argument("--model", default="uniqa-small")
    p.add_argument("--pretrained")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the thread policy's, 1)")
    add_busy_argument(p)
    args = p.parse_args(argv)

    import numpy as np
    import torch

    import uniqa.evaluation.metrics  # noqa: F401 - scipy's import (seconds) must not land in the first timed epoch
    from uniqa.adapters.config import AdaptConfig
    from uniqa.adapters.exact import ExactSource
    from uniqa.adapters.run import preflight
    from uniqa.adapters.training import HeadTemplate, Recipe, cached_source, train_head
    from uniqa.models.encoder import ImageEncoder
    from uniqa.runtime import torch_threads

    with tempfile.TemporaryDirectory() as tmp, torch_threads(args.threads) as threads:
        manifest = args.manifest or sample_manifest(tmp)
        cfg = AdaptConfig(model=args.model, pretrained=args.pretrained, epochs=args.epochs, runner="local")
        prep = preflight(manifest, None, "", cfg)
        plan = prep.plans[0]
        model, tokenizer = prep.frozen.load()
        template = HeadTemplate.from_model(model, tokenizer, cfg.trained_prompt_set)
        source = ExactSource(prep.uris, prep.ids, ImageEncoder(model, cfg.views_per_pass), cfg.seed, cfg.views)
        start = time.perf_counter()
        test = source.test(plan.test)
        train = np.stack([source(k, plan.train).numpy() for k in range(args.epochs)], axis=1)  # K = epochs views
        cache_seconds = time.perf_counter() - start
        evals = {"test": (test, prep.mos[plan.test])}
        recipe = Recipe(args.epochs, cfg.batch_size, cfg.lr)
        n = len(plan.train)
        print(f"model {prep.frozen.key}, {n} training images, {len(plan.test)} test images, {args.epochs} epochs, "
              f"{threads} threads; one-off cache cost ({args.epochs} train views + 10 test crops): "
              f"{cache_seconds:.1f} s")

        def measure() -> dict:
            ms, states = {}, {}
            # the cache holds only the training images: positions 0..n-1 there are plan.train in the exact source
            for name, features, positions in (("cached", cached_source(train), np.arange(n)),
                                              ("exact", source, plan.train)):
                start = time.perf_counter()
                states[name] = train_head(template, features, positions, prep.mos[plan.train], evals, "test",
                                          recipe, plan.seed).state
                ms[name] = 1000 * (time.perf_counter() - start) / args.epochs
            same = all(torch.allclose(states["cached"][k], states["exact"][k], atol=1e-5) for k in states["cached"])
            print(f"  cached features: {ms['cached']:9.1f} ms/epoch")
            print(f"  exact (re-encode every epoch): {ms['exact']:9.1f} ms/epoch")
            print(f"  ratio exact / cached: {ms['exact'] / ms['cached']:.1f}x   (goal >= 20x; same adapter weights: "
                  f"{same})")
            return {"cached_ms_per_epoch": ms["cached"], "exact_ms_per_epoch": ms["exact"],
                    "ratio": ms["exact"] / ms["cached"], "same_weights": same}

        side_by_side(measure, args.busy, ["ratio"], seconds=args.busy_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
