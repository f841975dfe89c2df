"""Ray job entry point of adapter training: the same run function, flags and checks as ``uniqa adapt``.

    ray job submit --working-dir . -- python pipelines/adapt.py --manifest s3://bucket/manifests/koniq \
        --model ViT-B-16-quickgelu --pretrained s3://bucket/UniQA_weight.pt --head quality --protocol full \
        --features s3://bucket/features/koniq --out s3://bucket/adapt/koniq

Steps (uniqa.adapters.run): every check before any work -> features (read, or computed by the features stage)
-> the protocol's runs as Ray tasks (pure torch on the features) -> results, summary, adapters under --out.
"""

from __future__ import annotations

import sys

from uniqa.cli import main as uniqa_main


def main(argv: list[str] | None = None) -> int:
    return uniqa_main(["adapt", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
