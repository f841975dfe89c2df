"""``uniqa purify``: keep the best K human comments per aesthetics image; rejected ones with a reason."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, help="manifest with a comments column (e.g. AVA), local or s3://")
    p.add_argument("--captions", required=True, help="caption folder from `uniqa caption` (aesthetic captions)")
    p.add_argument("--out", required=True, help="output folder: kept comments; rejected ones under OUT/rejected")
    p.add_argument("--config", help="YAML/JSON PurifyConfig file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set keep=5 --set embedder.name=bow "
                        "--set embedder.pretrained=PATH")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("purify", help="purify human comments (AR + IR ranking, keep best K)")
    add_arguments(p)
    p.set_defaults(func=run)


def load(args):
    from uniqa.config import load_config
    from uniqa.purification.purify import PurifyConfig

    return load_config(PurifyConfig, args.config, args.set)


def run(args) -> int:
    from uniqa.purification.run import run_purify, summary_line

    print(summary_line(run_purify(args.manifest, args.captions, args.out, load(args), progress=not args.no_progress)))
    return 0
