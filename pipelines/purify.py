"""Ray job entry point of comment purification (same run function and flags as ``uniqa purify``):

    ray job submit --working-dir . -- python pipelines/purify.py \
        --manifest s3://bucket/manifests/ava --captions s3://bucket/captions/ava --out s3://bucket/purified/ava \
        --set embedder.pretrained=s3://bucket/weights/ViT-B-16.pt --set embedder.device=cuda --set num_gpus=1
"""

from __future__ import annotations

import argparse
import sys

from uniqa.errors import UniqaError
from uniqa.purification.cli import add_arguments, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        cfg = load(args)  # config errors before any Ray work
        from uniqa.purification.run import run_purify, summary_line

        print(summary_line(run_purify(args.manifest, args.captions, args.out, cfg)))
    except UniqaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
