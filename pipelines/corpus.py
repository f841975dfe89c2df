"""Ray job entry point of the corpus: the same run function, flags and checks as ``uniqa corpus``.

    ray job submit --working-dir . -- python pipelines/corpus.py \
        --manifest s3://bucket/manifests/koniq --manifest s3://bucket/manifests/ava \
        --captions s3://bucket/captions/koniq --captions s3://bucket/captions/ava \
        --purified s3://bucket/purified/ava --out s3://bucket/corpus

Steps (uniqa.corpus.run): inputs checked before any Ray work -> read manifests, captions, purified comments ->
group by image_id hash partition -> tidy, de-duplicate, level prompts, weights -> Parquet shards under --out.
"""

from __future__ import annotations

import sys

from uniqa.cli import main as uniqa_main


def main(argv: list[str] | None = None) -> int:
    return uniqa_main(["corpus", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
