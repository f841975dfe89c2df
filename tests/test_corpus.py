"""The unified corpus: pairs from captions, purified comments and level prompts, duplicates removed, weights,
stats from per-partition partial aggregates; the Ray job end to end through the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pytest

from uniqa.cli import main
from uniqa.corpus import CorpusConfig, assemble, merge_stats, partial_stats
from uniqa.corpus.build import caption_rows, comment_rows, image_rows, level_prompts
from uniqa.errors import UniqaError
from uniqa.partition import PARTITION, partition_of
from uniqa.schema import CAPTIONS, CORPUS, MANIFEST, PURIFIED, SPLIT_COLUMNS
from uniqa.tables import read_table, write_table


def manifest_table(ids: list[str], task: str, level: str | None = "fair") -> pa.Table:
    return pa.Table.from_pylist([{"image_id": i, "image_uri": f"/data/{i}.jpg", "dataset": "d", "task": task,
                                  "mos": None if level is None else 0.5, "mos_norm": None if level is None else 0.5,
                                  "level": level, **{c: "train" for c in SPLIT_COLUMNS}} for i in ids])


def captions_table(rows: list[tuple]) -> pa.Table:
    return pa.Table.from_pylist([{"image_id": i, "task": t, "caption": c, "backend": "attributes",
                                  "model": "attributes-v1", "prompt_version": "v1", "error": e}
                                 for i, t, c, e in rows])


def purified_table(rows: list[tuple[str, str]]) -> pa.Table:
    return pa.Table.from_pylist([{"image_id": i, "comment": c, "rank": r + 1, "similarity": 0.5, "relevance_rank": 1,
                                  "informativeness_rank": 1, "words": len(c.split()), "score": 2}
                                 for r, (i, c) in enumerate(rows)])


IQA = manifest_table(["q1", "q2"], "quality")
IAA = manifest_table(["a1", "a2"], "aesthetics", level="good").slice(0, 1).to_pylist() + \
    manifest_table(["a2"], "aesthetics", level=None).to_pylist()
IAA = pa.Table.from_pylist(IAA, schema=IQA.schema)
CAP_IQA = captions_table([("q1", "quality", "The quality of this image is good: it is sharp.", None),
                          ("q2", "quality", None, "q2.jpg: truncated JPEG data")])
CAP_IAA = captions_table([("a1", "aesthetics", "The aesthetics of this image are fair, with even lighting.", None),
                          ("a2", "aesthetics", "The aesthetics of this image are poor.", None),
                          ("zz", "aesthetics", "An image in no manifest.", None)])
KEPT = purified_table([("a1", "Lovely soft light on the subject."), ("a1", "Nice framing and colours."),
                       ("a2", "  The aesthetics of this image   are poor. "),  # duplicate of a2's caption
                       ("a1", "Lovely soft light on the subject."),  # exact duplicate
                       ("a1", " \n ")])  # empty once tidied
# image_id, source, text, weight with caption_weight=2 (comment 1, level prompt 0)
EXPECTED = [
    ("a1", "aesthetics_caption", "The aesthetics of this image are fair, with even lighting.", 0.5),
    ("a1", "comment", "Lovely soft light on the subject.", 0.25),
    ("a1", "comment", "Nice framing and colours.", 0.25),
    ("a1", "level_prompt", "good image", 0.0),
    ("a2", "aesthetics_caption", "The aesthetics of this image are poor.", 1.0),  # unlabelled: no level prompt
    ("q1", "quality_caption", "The quality of this image is good: it is sharp.", 1.0),
    ("q1", "level_prompt", "fair image", 0.0),
    ("q2", "level_prompt", "fair image", 0.0),  # its caption failed: only the level prompt
]
COUNTS = {"candidates": 12, "empty": 1, "duplicates": 2, "unknown_image": 1}  # 3 captions + 5 comments + 3 levels


def rows_of(partitions: int = 1) -> pa.Table:
    return pa.concat_tables([image_rows(IQA, partitions), image_rows(IAA, partitions),
                             caption_rows(CAP_IQA, partitions, 0), caption_rows(CAP_IAA, partitions, 1),
                             comment_rows(KEPT, partitions, 0)])


def as_tuples(table: pa.Table) -> list[tuple]:
    return [(r["image_id"], r["source"], r["text"], round(r["weight"], 4)) for r in table.to_pylist()]


def test_assemble_pairs_weights_level_prompts_and_drops():
    table, counts = assemble(rows_of().drop_columns([PARTITION]), CorpusConfig(caption_weight=2))
    assert table.schema.equals(CORPUS.schema)
    assert as_tuples(table) == EXPECTED
    assert table["image_uri"].to_pylist()[:2] == ["/data/a1.jpg"] * 2
    assert counts == COUNTS and len(table) + sum(counts.values()) - counts["candidates"] == COUNTS["candidates"]
    table, _ = assemble(rows_of().drop_columns([PARTITION]), CorpusConfig(level_prompt_weight=1))
    assert dict(zip(*[[r[0] + r[1] for r in as_tuples(table)], table["weight"].to_pylist()]))["q1level_prompt"] == 0.5


def test_level_prompts_use_the_head_wording():
    from uniqa.adapters.prompts import QUALITY
    from uniqa.schema import LEVELS

    images = pa.table({"image_id": [f"i{k}" for k in range(6)], "image_uri": ["u"] * 6,
                       "level": [*LEVELS, None]})
    texts = level_prompts(images)
    assert texts["image_id"].to_pylist() == ["i0", "i1", "i2", "i3", "i4"]
    assert texts["text"].to_pylist() == list(QUALITY.groups[0])  # "bad image" ... "perfect image"
    assert set(texts["source"].to_pylist()) == {"level_prompt"}


def test_partitions_hold_whole_images_and_partial_stats_merge_exactly():
    rows = rows_of(partitions=3)
    ids = rows["image_id"].to_pylist()
    assert rows[PARTITION].to_pylist() == partition_of(pa.array(ids), 3).to_pylist()  # same in every process
    whole, counts = assemble(rows.drop_columns([PARTITION]), CorpusConfig(caption_weight=2))
    partials = []
    for p in range(3):
        part = rows.filter(pa.compute.equal(rows[PARTITION], p)).drop_columns([PARTITION])
        table, c = assemble(part, CorpusConfig(caption_weight=2))
        partials.append(partial_stats(table, c))
    merged, direct = merge_stats(partials), merge_stats([partial_stats(whole, counts)])
    assert merged == direct
    assert merged["pairs"] == 8 and merged["images"] == 4 and merged["pairs_per_source"] == {
        "quality_caption": 1, "aesthetics_caption": 2, "comment": 2, "level_prompt": 3}
    assert merged["texts_per_image"] == {"min": 1, "mean": 2.0, "max": 4, "histogram": {"1": 2, "2": 1, "4": 1}}
    words = np.array([6, 4])
    q = np.percentile(words, [10, 50, 90])
    assert merged["words_per_text"]["comment"] == {"min": 4, "p10": q[0], "median": q[1], "p90": q[2], "max": 6,
                                                   "mean": 5.0}
    assert merged["words_per_text"]["level_prompt"]["median"] == 2.0
    assert {k: merged[k] for k in COUNTS} == COUNTS


def test_histogram_percentiles_equal_numpy():
    rng = np.random.default_rng(0)
    values = rng.integers(1, 40, 501)
    text = pa.array([" ".join(["w"] * int(v)) for v in values])
    table = pa.table({"image_id": [f"i{k}" for k in range(len(values))], "text": text,
                      "source": ["comment"] * len(values)})
    got = merge_stats([partial_stats(table.slice(0, 200)), partial_stats(table.slice(200))])["words_per_text"]
    want = np.percentile(values, [10, 50, 90])
    assert [got["comment"][k] for k in ("p10", "median", "p90")] == pytest.approx(want.tolist())
    assert got["comment"]["mean"] == round(values.mean(), 2)


def test_two_manifest_rows_of_one_image_fail():
    rows = pa.concat_tables([image_rows(IQA, 1), image_rows(IQA, 1)]).drop_columns([PARTITION])
    with pytest.raises(UniqaError, match="duplicate value 'q1'"):
        assemble(rows)


def test_config_checks():
    with pytest.raises(UniqaError, match="must not all be 0"):
        CorpusConfig(caption_weight=0, comment_weight=0)
    with pytest.raises(UniqaError, match="comment_weight must be a number >= 0"):
        CorpusConfig(comment_weight=-1)
    with pytest.raises(UniqaError, match="level_prompt must be a text holding"):
        CorpusConfig(level_prompt="a {grade} image")
    assert CorpusConfig(caption_weight=0, comment_weight=0, level_prompt_weight=1).level_prompt == "{level} image"
    assert CorpusConfig(rows_per_partition=10).num_partitions(25) == 3 and CorpusConfig(partitions=4).num_partitions(1)
    from uniqa.partition import shuffle_strategy

    assert [shuffle_strategy("auto", 1), shuffle_strategy("auto", 2), shuffle_strategy("sort", 8)] == [
        "sort_shuffle_pull_based", "shuffle_v2", "sort_shuffle_pull_based"]
    with pytest.raises(UniqaError, match=r"shuffle must be one of \['auto', 'sort', 'hash'\]"):
        CorpusConfig(shuffle="random")


@pytest.fixture
def inputs(tmp_path) -> dict[str, str]:
    paths = {k: str(tmp_path / k) for k in ("iqa", "iaa", "cap_iqa", "cap_iaa", "purified")}
    write_table(IQA, paths["iqa"], MANIFEST)
    write_table(IAA, paths["iaa"], MANIFEST)
    write_table(CAP_IQA, paths["cap_iqa"], CAPTIONS)
    write_table(CAP_IAA, paths["cap_iaa"], CAPTIONS)
    write_table(KEPT, os.path.join(paths["purified"], "kept"), PURIFIED)
    return paths


def test_corpus_inputs_fail_before_ray(inputs, tmp_path, capsys, monkeypatch):
    import uniqa.runtime

    monkeypatch.setattr(uniqa.runtime, "init_ray", lambda *a, **k: pytest.fail("Ray started"))
    base = ["corpus", "--manifest", inputs["iqa"], "--captions", inputs["cap_iqa"], "--out", str(tmp_path / "o")]
    assert main(base[:3] + ["--captions", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert main(base[:3] + ["--captions", inputs["iqa"], "--out", str(tmp_path / "o")]) == 2
    assert "missing column 'caption'" in capsys.readouterr().err
    assert main(base + ["--set", "level_prompt_weight=-1"]) == 2
    assert "level_prompt_weight must be a number >= 0" in capsys.readouterr().err


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_corpus_job_pairs_weights_and_summary(ray_session, inputs, tmp_path, capsys):
    out = str(tmp_path / "corpus")
    args = ["corpus", "--manifest", inputs["iqa"], "--manifest", inputs["iaa"], "--captions", inputs["cap_iqa"],
            "--captions", inputs["cap_iaa"], "--purified", inputs["purified"], "--out", out,
            "--caption-weight", "2", "--set", "partitions=3", "--set", "rows_per_shard=2", "--set", "shuffle=sort",
            "--quiet"]
    assert main(args) == 0
    table = read_table(out, CORPUS).sort_by([("image_id", "ascending")])
    by_image = {}
    for row in as_tuples(table):
        by_image.setdefault(row[0], []).append(row)
    assert [r for i in sorted(by_image) for r in by_image[i]] == EXPECTED  # per image in source order
    with open(os.path.join(out, "_summary.json")) as f:
        s = json.load(f)
    assert (s["stage"], s["unit"], s["rows_in"], s["rows_out"], s["rows_written"], s["rows_dropped"],
            s["complete"]) == ("corpus", "pairs", 12, 8, 8, 4, True)
    d = s["details"]
    assert d["pairs_per_source"] == {"quality_caption": 1, "aesthetics_caption": 2, "comment": 2, "level_prompt": 3}
    assert d["images"] == 4 and d["texts_per_image"]["histogram"] == {"1": 2, "2": 1, "4": 1}
    assert d["dropped"] == {"duplicates": 2, "unknown_image": 1, "empty": 1}
    assert d["files"] == len([f for f in os.listdir(out) if f.startswith("part-")]) >= 4  # 2 rows a shard
    assert main(args) == 0 and len(read_table(out, CORPUS)) == 8  # a rerun of the finished run does nothing
    with open(os.path.join(out, "_summary.json")) as f:
        again = json.load(f)
    assert (again["rows_written"], again["already_done"], again["rows_out"]) == (0, 8, 8)
    assert main([*args, "--set", "partitions=2"]) == 0 and len(read_table(out, CORPUS)) == 8  # another config
    with open(os.path.join(out, "_summary.json")) as f:  # replaces the shards
        assert json.load(f)["rows_written"] == 8
    assert main([*args, "--manifest", inputs["iqa"]]) == 2  # q1, q2 on two manifest rows: one error line
    assert "manifests: column 'image_id' has duplicate value 'q" in capsys.readouterr().err


def test_shards_are_cut_between_images():
    from uniqa.corpus.build import shard_bounds

    ids = pa.array(["a", "b", "c", "c", "c", "c", "d", "e", "e"])
    assert shard_bounds(ids, 2) == [(0, 2), (2, 4), (6, 1), (7, 2)]
    assert shard_bounds(ids, 100) == [(0, 9)] and shard_bounds(pa.array([], pa.string()), 2) == []


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_corpus_job_on_the_hash_shuffle(ray_session, inputs, tmp_path):
    from uniqa.corpus import run_corpus

    out = str(tmp_path / "corpus")
    summary = run_corpus([inputs["iqa"], inputs["iaa"]], [inputs["cap_iqa"], inputs["cap_iaa"]], [inputs["purified"]],
                         out, CorpusConfig(caption_weight=2, partitions=2, shuffle="hash"), progress=False)
    assert summary.complete and summary.rows_out == 8 and summary.details["partitions"] == 2
    table = read_table(out, CORPUS)
    assert sorted(as_tuples(table)) == sorted(EXPECTED)


def test_holdout_leaves_test_sides_and_whole_datasets_out():
    from uniqa.corpus.build import image_rows

    ids = ["a", "b", "c", "d", "e"]
    batch = pa.table({"image_id": ids, "image_uri": [f"{i}.png" for i in ids],
                      "level": ["bad", "good", "fair", "poor", "good"], "dataset": ["k", "k", "k", "k", "livec"],
                      "split_3": ["train", "test", None, "test", None],
                      "split_4": ["test", "train", None, "train", None]})
    assert image_rows(batch, 2, splits=("split_3",))["image_id"].to_pylist() == ["a", "c", "e"]
    assert image_rows(batch, 2, splits=("split_3", "split_4"))["image_id"].to_pylist() == ["c", "e"]
    assert image_rows(batch, 2, datasets=("livec",))["image_id"].to_pylist() == ["a", "b", "c", "d"]
    assert image_rows(batch, 2)["image_id"].to_pylist() == ["a", "b", "c", "d", "e"]
    cfg = CorpusConfig(holdout=["split_3", "dataset:livec", "split_4", "split_3"])
    assert cfg.holdout_splits == ("split_3", "split_4") and cfg.holdout_datasets == ("livec",)
    assert CorpusConfig(holdout="split_0").holdout == ("split_0",) and CorpusConfig().holdout == ()
    for bad in ("test", "dataset:", ["split_0", 3]):
        with pytest.raises(UniqaError, match=r"holdout must be a split column \(split_0, split_1 \.\. split_9\), "
                                             r"dataset:NAME, or a list of them, got"):
            CorpusConfig(holdout=bad)
