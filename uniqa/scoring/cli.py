"""``uniqa score``: quality and aesthetics (and any trained head) for a manifest, folder, prefix or list."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments shared by ``uniqa score`` and ``pipelines/score.py``."""
    p.add_argument("--input", help="manifest (Parquet file/folder), image folder, s3:// prefix, or .txt list of "
                   "image URIs (default: `input:` of --config)")
    p.add_argument("--out", help="output folder for score shards (local or s3://); reruns resume "
                   "(default: `out:` of --config)")
    p.add_argument("--model", help="model name (e.g. ViT-B-16-quickgelu, uniqa-tiny) or checkpoint folder")
    p.add_argument("--pretrained", help="weights for --model (checkpoint file/folder or open_clip tag)")
    p.add_argument("--heads", help="comma-separated, one output column each: NAME (zero-shot prompt set: quality, "
                   "aesthetics, quality-ensemble, ...), NAME=PROMPT_SET, or NAME=HEAD_FOLDER (a trained head: the "
                   "folder save_head wrote, or its head.safetensors); default quality,aesthetics")
    p.add_argument("--views", help="view protocol: crops10 | five | full")
    p.add_argument("--embeddings", action="store_true", default=None, help="also write the image embeddings")
    p.add_argument("--batch-size", type=int, help="images per model actor call")
    p.add_argument("--actors", type=int, help="number of model actors")
    p.add_argument("--config", help="YAML/JSON ScoreConfig file (e.g. cluster/score.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="ScoreConfig override, e.g. --set num_gpus=0.5 --set rows_per_block=64")
    p.add_argument("--ray-address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no Ray Data INFO lines")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score images for quality and aesthetics on Ray (exactly-once, resumable)")
    add_arguments(p)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """-> (ScoreConfig, input, out). Defaults <- --config file <- --set overrides <- explicit flags; the file
    may also hold ``input:`` and ``out:`` (what ``pipelines/score.py --config cluster/score.yaml`` runs)."""
    from uniqa.config import from_dict, merge, parse_overrides, read_config_file
    from uniqa.errors import UniqaError
    from uniqa.scoring.config import ScoreConfig

    data = read_config_file(args.config) if args.config else {}
    data = merge(data, parse_overrides(args.set))
    flags = {
        "model": args.model,
        "pretrained": args.pretrained,
        "heads": [h for h in args.heads.split(",") if h.strip()] if args.heads else None,
        "views": args.views,
        "embeddings": args.embeddings,
        "batch_size": args.batch_size,
        "num_actors": args.actors,
    }
    data = merge(data, {k: v for k, v in flags.items() if v is not None})
    input_uri, out = args.input or data.pop("input", None), args.out or data.pop("out", None)
    data.pop("input", None), data.pop("out", None)
    for name, value in (("input", input_uri), ("out", out)):
        if not value:
            raise UniqaError(f"no {name}: pass --{name} or set `{name}:` in the --config file")
    return from_dict(ScoreConfig, data), str(input_uri), str(out)


def run(args: argparse.Namespace) -> int:
    from uniqa.scoring.run import run_score

    cfg, input_uri, out = config_from_args(args)
    summary = run_score(input_uri, out, cfg, progress=not args.quiet, address=args.ray_address)
    print(summary.line())
    return 0 if summary.complete or summary.input_rows is None else 1
