"""``uniqa corpus``: captions + purified comments -> (image, text) pair shards with stats."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="build the unified (image, text) corpus from captions and comments")
    p.add_argument("--manifest", action="append", required=True,
                   help="manifest Parquet file/folder (repeat for several datasets)")
    p.add_argument("--captions", action="append", required=True, help="caption folder (repeatable)")
    p.add_argument("--purified", action="append", default=[], help="purified comment folder (repeatable)")
    p.add_argument("--out", required=True, help="output folder for corpus shards (local or s3://)")
    p.add_argument("--config", help="YAML/JSON CorpusConfig file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set comment_weight=0.5")
    p.set_defaults(func=run)


def run(args) -> int:
    from uniqa.config import load_config
    from uniqa.corpus.build import CorpusConfig
    from uniqa.corpus.run import run_corpus, summary_lines

    cfg = load_config(CorpusConfig, args.config, args.set)
    for line in summary_lines(run_corpus(args.manifest, args.captions, args.purified, args.out, cfg)):
        print(line)
    return 0
