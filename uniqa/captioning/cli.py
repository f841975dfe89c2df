"""``uniqa caption``: caption a manifest's images with a backend (attributes | openai | vllm)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, help="manifest Parquet file or folder (local or s3://)")
    p.add_argument("--out", required=True, help="output folder of caption Parquet files (local or s3://)")
    p.add_argument("--backend", help="captioner: attributes (offline CPU, default) | openai | vllm")
    p.add_argument("--config", help="YAML/JSON CaptionConfig file (e.g. cluster/caption-vllm.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set openai.model=NAME --set prompt_version=v1")
    p.add_argument("--limit", type=int, help="caption at most N not-yet-captioned images (rerun to continue)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("caption", help="caption images (quality / aesthetics) into Parquet; resumable")
    add_arguments(p)
    p.set_defaults(func=run)


def load(args):
    from uniqa.captioning.config import CaptionConfig
    from uniqa.config import load_config

    overrides = list(args.set)
    if args.backend:
        overrides.append(f"backend={args.backend}")
    if args.limit is not None:
        overrides.append(f"limit={args.limit}")
    if args.no_progress:
        overrides.append("progress=false")
    return load_config(CaptionConfig, args.config, overrides)


def run(args) -> int:
    from uniqa.captioning.run import run_caption, summary_lines

    cfg = load(args)
    summary = run_caption(args.manifest, args.out, cfg)
    for line in summary_lines(summary):
        print(line)
    return 0
