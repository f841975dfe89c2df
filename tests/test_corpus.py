"""The unified corpus: pairs from captions and purified comments, duplicates removed, weights, stats."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pytest

from uniqa.cli import main
from uniqa.corpus import CorpusConfig, build_pairs, stats
from uniqa.corpus.build import read_images
from uniqa.errors import UniqaError
from uniqa.schema import CAPTIONS, CORPUS, MANIFEST, PURIFIED, SPLIT_COLUMNS
from uniqa.tables import read_table, write_table


def manifest_table(ids: list[str], task: str) -> pa.Table:
    return pa.Table.from_pylist([{"image_id": i, "image_uri": f"/data/{i}.jpg", "dataset": "d", "task": task,
                                  "mos": 0.5, "mos_norm": 0.5, "level": "fair",
                                  **{c: "train" for c in SPLIT_COLUMNS}} for i in ids])


def captions_table(rows: list[tuple]) -> pa.Table:
    return pa.Table.from_pylist([{"image_id": i, "task": t, "caption": c, "backend": "attributes",
                                  "model": "attributes-v1", "prompt_version": "v1", "error": e}
                                 for i, t, c, e in rows])


def purified_table(rows: list[tuple[str, str]]) -> pa.Table:
    return pa.Table.from_pylist([{"image_id": i, "comment": c, "rank": r + 1, "similarity": 0.5, "relevance_rank": 1,
                                  "informativeness_rank": 1, "words": len(c.split()), "score": 2}
                                 for r, (i, c) in enumerate(rows)])


@pytest.fixture
def inputs(tmp_path) -> dict[str, str]:
    paths = {k: str(tmp_path / k) for k in ("iqa", "iaa", "cap_iqa", "cap_iaa", "purified")}
    write_table(manifest_table(["q1", "q2"], "quality"), paths["iqa"], MANIFEST)
    write_table(manifest_table(["a1", "a2"], "aesthetics"), paths["iaa"], MANIFEST)
    write_table(captions_table([("q1", "quality", "The quality of this image is good: it is sharp.", None),
                                ("q2", "quality", None, "q2.jpg: truncated JPEG data")]), paths["cap_iqa"], CAPTIONS)
    write_table(captions_table([("a1", "aesthetics", "The aesthetics of this image are fair, with even lighting.",
                                 None),
                                ("a2", "aesthetics", "The aesthetics of this image are poor.", None),
                                ("zz", "aesthetics", "An image in no manifest.", None)]), paths["cap_iaa"], CAPTIONS)
    write_table(purified_table([("a1", "Lovely soft light on the subject."), ("a1", "Nice framing and colours."),
                                ("a2", "  The aesthetics of this image   are poor. "),  # duplicate of a2's caption
                                ("a1", "Lovely soft light on the subject.")]),  # exact duplicate
                os.path.join(paths["purified"], "kept"), PURIFIED)
    return paths


def test_corpus_cli_pairs_weights_and_stats(inputs, tmp_path, capsys):
    out = str(tmp_path / "corpus")
    args = ["corpus", "--manifest", inputs["iqa"], "--manifest", inputs["iaa"], "--captions", inputs["cap_iqa"],
            "--captions", inputs["cap_iaa"], "--purified", inputs["purified"], "--out", out,
            "--set", "caption_weight=2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "5 pairs for 3 images (quality_caption 1, aesthetics_caption 2, comment 2)" in printed
    table = read_table(out, CORPUS)
    assert table["image_uri"].to_pylist() == ["/data/a1.jpg"] * 3 + ["/data/a2.jpg", "/data/q1.jpg"]
    rows = [(r["image_id"], r["source"], r["text"], round(r["weight"], 4)) for r in table.to_pylist()]
    assert rows == [
        ("a1", "aesthetics_caption", "The aesthetics of this image are fair, with even lighting.", 0.5),
        ("a1", "comment", "Lovely soft light on the subject.", 0.25),
        ("a1", "comment", "Nice framing and colours.", 0.25),
        ("a2", "aesthetics_caption", "The aesthetics of this image are poor.", 1.0),
        ("q1", "quality_caption", "The quality of this image is good: it is sharp.", 1.0),
    ]
    with open(os.path.join(out, "_stats.json")) as f:
        s = json.load(f)
    assert s["pairs"] == 5 and s["images"] == 3 and s["dropped_unknown_image"] == 1
    assert s["texts_per_image"] == {"min": 1, "mean": 1.667, "max": 3, "histogram": {"1": 2, "3": 1}}
    assert s["words_per_text"]["comment"] == {"min": 4, "p10": 4.2, "median": 5.0, "p90": 5.8, "max": 6,
                                              "mean": 5.0}
    assert main(args) == 0 and len(read_table(out, CORPUS)) == 5  # rerun replaces the shards


def test_build_pairs_rejects_ids_in_two_manifests_and_empty_texts(inputs):
    with pytest.raises(UniqaError, match="image_id 'q1' appears more than once"):
        read_images([inputs["iqa"], inputs["iqa"]])
    images = pa.table({"image_id": ["x"], "image_uri": ["/x.jpg"]})
    parts = [pa.table({"image_id": ["x", "x"], "text": ["  ", "ok text"], "source": ["comment", "comment"]})]
    table, unknown = build_pairs(images, parts, CorpusConfig())
    assert table["text"].to_pylist() == ["ok text"] and table["weight"].to_pylist() == [1.0] and unknown == 0
    assert stats(table)["pairs_per_source"] == {"quality_caption": 0, "aesthetics_caption": 0, "comment": 1}
    with pytest.raises(UniqaError, match="caption_weight and comment_weight"):
        CorpusConfig(caption_weight=0, comment_weight=0)
