"""Ray job entry point of comment purification: the same run function, flags and checks as ``uniqa purify``.

    ray job submit --working-dir . -- python pipelines/purify.py \
        --manifest s3://bucket/manifests/ava --captions s3://bucket/captions/ava --out s3://bucket/purified/ava \
        --set embedder.pretrained=s3://bucket/weights/ViT-B-16.pt --set embedder.device=cuda --set num_gpus=1

Steps (uniqa.purification.run): inputs and embedder weights checked before any Ray work -> read the aesthetics
rows with comments and the aesthetic captions -> join them by image_id hash partition (each batch carries its own
captions) -> embedder actors (clean, rank by AR + IR, keep the best K) -> kept comments under OUT/kept, rejected
ones with their reason under OUT/rejected.
"""

from __future__ import annotations

import sys

from uniqa.cli import main as uniqa_main


def main(argv: list[str] | None = None) -> int:
    return uniqa_main(["purify", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
