"""Decode + resize to 224 of large JPEGs: full decode vs JPEG draft mode, side by side in one run.

    python benchmarks/decode.py [--n 16] [--width 2000] [--height 1500] [--size 224] [--rounds 5] [--busy 1]

Generates the JPEGs in memory (a scikit-image photo upscaled with grain, so they compress like photos),
then alternates the two modes round by round (so machine load hits both alike) and reports the
median round's throughput of each and their ratio (goal: draft >= 2x full), plus the best rounds'. ``--busy 1``
measures again beside a CPU-burning process and prints both side by side (benchmarks/neighbours.py).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time

import numpy as np
from PIL import Image

from uniqa.data.images import DecodeConfig, load_image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/ (also when run with runpy)
from neighbours import add_busy_argument, side_by_side  # noqa: E402


def make_jpegs(n: int, width: int, height: int, quality: int = 90, seed: int = 0) -> list[bytes]:
    import skimage.data

    rng = np.random.default_rng(seed)
    base = Image.fromarray(skimage.data.astronaut()).resize((width, height), Image.Resampling.BICUBIC)
    base = np.asarray(base, dtype=np.int16)
    out = []
    for _ in range(n):
        arr = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


def one_round(jpegs: list[bytes], cfg: DecodeConfig) -> float:
    """Images per second for decoding + resizing every JPEG once."""
    start = time.perf_counter()
    for data in jpegs:
        load_image(data, cfg)
    return len(jpegs) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    """Returns the idle measurement: ``{"full", "draft", "ratio", "ratio_best"}``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="number of JPEGs")
    ap.add_argument("--width", type=int, default=2000)
    ap.add_argument("--height", type=int, default=1500)
    ap.add_argument("--size", type=int, default=224, help="target shorter side")
    ap.add_argument("--rounds", type=int, default=5)
    add_busy_argument(ap)
    args = ap.parse_args(argv)

    jpegs = make_jpegs(args.n, args.width, args.height)
    full_cfg, draft_cfg = DecodeConfig(size=args.size, draft=False), DecodeConfig(size=args.size, draft=True)
    a, b = load_image(jpegs[0], full_cfg), load_image(jpegs[0], draft_cfg)
    assert a.shape == b.shape, (a.shape, b.shape)
    diff = float(np.abs(a.astype(int) - b.astype(int)).mean())
    mb = sum(map(len, jpegs)) / len(jpegs) / 2**20

    def measure() -> dict:
        full, draft = [], []
        for _ in range(args.rounds):
            full.append(one_round(jpegs, full_cfg))
            draft.append(one_round(jpegs, draft_cfg))
        result = {"full": statistics.median(full), "draft": statistics.median(draft)}
        result["ratio"] = result["draft"] / result["full"]
        print(f"{args.n} JPEGs {args.width}x{args.height} (~{mb:.2f} MB each) -> shorter side {args.size}, "
              f"output {a.shape[1]}x{a.shape[0]}, median of {args.rounds} rounds")
        print(f"full decode : {result['full']:7.1f} images/s")
        print(f"draft mode  : {result['draft']:7.1f} images/s")
        result["ratio_best"] = max(draft) / max(full)  # least disturbed by other load on the machine
        print(f"ratio       : {result['ratio']:7.2f}x   (goal >= 2x; mean abs pixel difference {diff:.2f}/255)")
        print(f"best rounds : {max(full):.1f} vs {max(draft):.1f} images/s, ratio {result['ratio_best']:.2f}x")
        return result

    return side_by_side(measure, args.busy, headline=["ratio", "ratio_best"], seconds=args.busy_seconds)["idle"]


if __name__ == "__main__":
    main()
