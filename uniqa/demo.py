"""``uniqa demo``: the main job end to end on the embedded sample (no GPU, no downloads)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the embedded sample corpus")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.set_defaults(func=run)


def run(args) -> int:
    raise NotImplementedError
