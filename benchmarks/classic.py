"""Classic heads' cost per image beside the model's, one run, same images: the in-process ``Scorer`` (the
function every scoring actor runs) with each classic metric alone (NIQE, BRISQUE, PIQE: decode + the metric on
the whole image) and with the model's zero-shot quality head alone (decode + crops10 views + encoder), one torch
thread, at two image sizes.

    python benchmarks/classic.py [--images 200] [--sizes 128,384] [--models uniqa-tiny,uniqa-small] [--busy 1]

Prints ms per image of each and the ratio metric / model per size (below 1: the metric is the cheaper first
filter). Random-init weights: the cost of a forward pass does not depend on the weights.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from neighbours import add_busy_argument, side_by_side  # noqa: E402
from score import make_images, uris_of  # noqa: E402


def per_image_ms(scorer, uris: list[str]) -> float:
    """Milliseconds per image of ``scorer.score`` over ``uris`` (after one warm-up image)."""
    scorer.score(uris[:1])
    start = time.perf_counter()
    rows = scorer.score(uris)
    took = time.perf_counter() - start
    assert all(r["error"] is None for r in rows), [r["error"] for r in rows if r["error"]][:3]
    return 1000 * took / len(uris)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200, help="images per size")
    ap.add_argument("--sizes", default="128,384", help="square image sizes in px (128: the sample's IQA tiles)")
    ap.add_argument("--models", default="uniqa-tiny,uniqa-small", help="models to compare with (random init)")
    ap.add_argument("--work", default="runs/bench_classic", help="folder for the generated images")
    add_busy_argument(ap)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from uniqa.classic import CLASSIC_METRICS
    from uniqa.scoring.api import Scorer

    sizes, models = [int(s) for s in args.sizes.split(",")], args.models.split(",")
    uris = {size: uris_of(make_images(Path(args.work) / f"s{size}", args.images, size=size)) for size in sizes}
    scorers = {**{m: Scorer.from_pretrained(m, heads=("quality",), threads=1, batch_size=32) for m in models},
               **{c: Scorer.from_pretrained("", heads=(c,), batch_size=32) for c in CLASSIC_METRICS}}
    print(f"{args.images} images per size {sizes}; models {models} (crops10, 1 torch thread); {CLASSIC_METRICS}")

    def measure() -> dict:
        result = {}
        for size in sizes:
            ms = {name: per_image_ms(scorer, uris[size]) for name, scorer in scorers.items()}
            print(f"{size:4d} px: " + "  ".join(f"{name} {v:6.1f} ms" for name, v in ms.items()))
            for name, v in ms.items():
                result[f"{name}_ms_{size}"] = v
            for c in CLASSIC_METRICS:
                for m in models:
                    result[f"{c}_over_{m}_{size}"] = ms[c] / ms[m]
            print("        " + "  ".join(f"{c}/{m} {ms[c] / ms[m]:.2f}" for c in CLASSIC_METRICS for m in models))
        return result

    headline = [f"{c}_over_{models[-1]}_{sizes[0]}" for c in CLASSIC_METRICS]  # the largest model: a stable time
    return side_by_side(measure, args.busy, headline, seconds=args.busy_seconds)


if __name__ == "__main__":
    main()
