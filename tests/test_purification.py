"""Comment purification: cleaning reasons, exact AR / IR ranks and kept sets on hand-written threads, the
embedders, and the Ray job on the sample corpus's AVA-format comments."""

from __future__ import annotations

import os
import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from uniqa.cli import main
from uniqa.errors import UniqaError
from uniqa.purification import CleanConfig, clean, min_ranks, purify_batch
from uniqa.purification.embedders import BagOfWords, EmbedderConfig, create_embedder
from uniqa.schema import CAPTIONS, MANIFEST, PURIFIED, REJECTED
from uniqa.stage import read_summary
from uniqa.tables import read_table, write_table

CAPTION = "warm colours and soft light on the cat"
THREAD = [
    "Lovely warm colours on the cat, soft light too",  # 0: 9 words
    "nice",  # 1: 1 word
    "oh!!!",  # 2: interjection
    "What camera did you use? I am thinking of upgrading.",  # 3: 10 words, off topic
    "lovely warm colours on the cat,  soft light too",  # 4: duplicate of 0 (case, whitespace)
    "   ",  # 5: empty
    "Great light",  # 6: 2 words
    "😍😍😍",  # 7: emoji only
    "The colours are warm and the light is soft and even",  # 8: 11 words
]
VECTORS = {CAPTION: [1.0, 0.0], THREAD[0]: [0.9, 0.1], THREAD[1]: [0.2, 1.0], THREAD[3]: [0.0, 1.0],
           THREAD[6]: [1.0, 0.0], THREAD[8]: [0.7, 0.3]}


def table_embedder(texts: list[str]) -> np.ndarray:
    return np.array([VECTORS[t] for t in texts], np.float32)


def test_clean_reasons():
    kept, rejected = clean(THREAD)
    assert kept == [0, 1, 3, 6, 8]
    assert rejected == [(2, "non_linguistic"), (4, "duplicate"), (5, "empty"), (7, "non_linguistic")]
    for noise in ("wow!!", "!!!!!", "hmm...", "Oooh!", "ha!", ":)", "👍", "❤️", "haha", "?? ok ??"):
        assert clean([noise])[1] == [(0, "non_linguistic")], noise
    assert clean(["nice", "Great light"], CleanConfig(min_words=2))[1] == [(0, "too_short")]
    with pytest.raises(UniqaError, match="min_words"):
        CleanConfig(min_words=0)


def test_exact_ranks_and_kept_set_on_a_hand_written_thread():
    """sims: 6 -> 1.0, 0 -> .994, 8 -> .919, 1 -> .196, 3 -> 0  => AR 6:1 0:2 8:3 1:4 3:5
    words: 8 -> 11, 3 -> 10, 0 -> 9, 6 -> 2, 1 -> 1           => IR 8:1 3:2 0:3 6:4 1:5
    score: 8 -> 4, 0 -> 5, 6 -> 5, 3 -> 7, 1 -> 9; the 0/6 tie goes to the more relevant (6)."""
    kept, rejected = purify_batch(["img"], [THREAD], [CAPTION], table_embedder, keep=3)
    rows = sorted(kept.to_pylist(), key=lambda r: r["rank"])
    assert [(r["comment"], r["rank"], r["relevance_rank"], r["informativeness_rank"], r["score"], r["words"])
            for r in rows] == [(THREAD[8], 1, 3, 1, 4, 11), (THREAD[6], 2, 1, 4, 5, 2), (THREAD[0], 3, 2, 3, 5, 9)]
    assert rows[1]["similarity"] == pytest.approx(1.0) and rows[0]["similarity"] == pytest.approx(0.7 / 0.58**0.5)
    reasons = {(r["comment"], r["reason"]): (r["relevance_rank"], r["score"]) for r in rejected.to_pylist()}
    assert reasons == {(THREAD[2], "non_linguistic"): (None, None), (THREAD[4], "duplicate"): (None, None),
                       (THREAD[5], "empty"): (None, None), (THREAD[7], "non_linguistic"): (None, None),
                       (THREAD[3], "not_top_k"): (5, 7), (THREAD[1], "not_top_k"): (4, 9)}
    assert kept.schema.equals(PURIFIED.schema) and rejected.schema.equals(REJECTED.schema)


def test_ties_share_the_best_rank_and_missing_captions_are_rejected():
    assert min_ranks(np.array([5, 5, 3, 7])).tolist() == [2, 2, 4, 1]
    texts = ["one two three four five", "six seven eight nine ten", "a b c"]
    vec = {"cap": [1.0, 0.0], texts[0]: [0.0, 1.0], texts[1]: [1.0, 1.0], texts[2]: [1.0, 0.0]}
    kept, _ = purify_batch(["x"], [texts], ["cap"], lambda ts: np.array([vec[t] for t in ts]), keep=2)
    got = {r["comment"]: (r["informativeness_rank"], r["relevance_rank"], r["score"]) for r in kept.to_pylist()}
    assert got == {texts[1]: (1, 2, 3), texts[2]: (3, 1, 4)}  # texts[0]: IR 1 (tie) + AR 3 = 4, loses on AR
    kept, rejected = purify_batch(["y", "z"], [["a fine photo"], None], [None, "cap"], table_embedder)
    assert len(kept) == 0 and rejected.to_pylist()[0]["reason"] == "no_caption"


def test_bag_of_words_relevance_prefers_on_topic_comments():
    kept, _ = purify_batch(["img"], [THREAD], [CAPTION], BagOfWords(), keep=2)
    assert set(kept["comment"].to_pylist()) == {THREAD[0], THREAD[8]}
    texts = ["vivid colours and a balanced composition", "Lovely palette, nicely framed", "Good luck everyone!",
             "The aesthetics of this image are good", "the colour", "The colours!"]
    v = BagOfWords()(texts)
    assert v[0] @ v[1] > 0.3  # no shared word, shared concepts: colour (palette) and composition (framed)
    assert v[2] @ v[3] == 0  # level words and "image" are stop words: no relevance from the caption's lead
    assert v[4] @ v[5] == pytest.approx(1.0)  # plural "s" dropped


@pytest.mark.slow
def test_clip_text_embedder_on_a_tiny_model():
    embed = create_embedder(EmbedderConfig(name="clip", model="uniqa-tiny", pretrained=None))
    v = embed(["a sharp photo", "a blurry photo", "a sharp photo"])
    assert v.shape == (3, 64) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.allclose(v[0], v[2]) and not np.allclose(v[0], v[1])
    with pytest.raises(UniqaError, match="unknown text embedder 'sbert'"):
        EmbedderConfig(name="sbert")


def relevance_quality(kept: pa.Table, rejected: pa.Table) -> tuple[float, float]:
    """On the sample's threads, where the relevant comments are known (sample_comments.RELEVANT): (share of images
    whose relevant comments all get a better AR than every other ranked comment, share of relevant comments
    among each image's best n by score, n = its number of relevant comments)."""
    from uniqa.data.sample_comments import RELEVANT

    patterns = [re.compile("^" + re.escape(t).replace(re.escape("{s}"), ".+") + "$")
                for templates in RELEVANT.values() for t in templates]
    ranked = [r for r in kept.to_pylist() + rejected.to_pylist() if r["relevance_rank"] is not None]
    by_image: dict[str, list[dict]] = {}
    for r in ranked:
        r["relevant"] = any(p.match(r["comment"]) for p in patterns)
        by_image.setdefault(r["image_id"], []).append(r)
    ar_first, hits, total = 0, 0, 0
    for rows in by_image.values():
        relevant = [r["relevance_rank"] for r in rows if r["relevant"]]
        other = [r["relevance_rank"] for r in rows if not r["relevant"]]
        ar_first += not other or max(relevant, default=0) < min(other)
        best = sorted(rows, key=lambda r: (r["score"], r["relevance_rank"]))[:len(relevant)]
        hits, total = hits + sum(r["relevant"] for r in best), total + len(relevant)
    return ar_first / len(by_image), hits / total


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_purify_job_rejects_the_sample_noise(ray_session, sample_corpus, tmp_path, capsys):
    from uniqa.captioning.attributes import caption_batch
    from uniqa.data.prepare import prepare
    from uniqa.data.sample_comments import EMOJI, EXCLAMATIONS

    manifest = str(tmp_path / "ava")
    prepare("ava", os.path.join(sample_corpus, "iaa"), manifest)
    table = read_table(manifest, MANIFEST)
    batch = {k: np.array(table[k].to_pylist(), dtype=object) for k in ("image_id", "image_uri", "task", "level")}
    captions = caption_batch(batch)  # the attributes captioner's aesthetic captions, in process
    write_table(captions.slice(1), str(tmp_path / "captions"), CAPTIONS)  # the first image has no caption
    out = str(tmp_path / "purified")
    args = ["purify", "--manifest", manifest, "--captions", str(tmp_path / "captions"), "--out", out,
            "--set", "embedder.name=bow", "--set", "num_cpus=0.5"]
    assert main(args) == 0
    assert "purify: " in capsys.readouterr().out
    summary = read_summary(out)
    assert summary["stage"] == "purify" and summary["unit"] == "comments" and summary["complete"]
    assert summary["details"]["images"] == 320 and summary["details"]["embedder"] == "bow"
    kept_dir, rejected_dir = os.path.join(out, "kept"), os.path.join(out, "rejected")
    kept, rejected = read_table(kept_dir, PURIFIED), read_table(rejected_dir, REJECTED)
    comments = {r["image_id"]: r["comments"] for r in table.to_pylist()}
    assert len(kept) + len(rejected) == sum(len(c) for c in comments.values())  # every comment accounted for
    assert summary["rows_in"] == summary["rows_out"] == summary["rows_written"] == len(kept) + len(rejected)
    assert (summary["details"]["kept"], summary["details"]["rejected"]) == (len(kept), len(rejected))
    assert summary["details"]["rejected_by_reason"] == dict(sorted(Counter(rejected["reason"].to_pylist()).items()))
    noise = set(EXCLAMATIONS) | set(EMOJI)
    assert not noise & set(kept["comment"].to_pylist())
    noisy_rejected = [r for r in rejected.to_pylist() if r["comment"] in noise]
    assert noisy_rejected and {r["reason"] for r in noisy_rejected} <= {"non_linguistic", "no_caption"}
    for _, group in kept.to_pandas().groupby("image_id"):
        assert sorted(group["rank"]) == list(range(1, len(group) + 1)) and len(group) <= 5
    first = table["image_id"][0].as_py()
    assert first not in set(kept["image_id"].to_pylist())
    # measured .89, .97 on the 320-image sample (.94, .98 on the old 64 images, whose comments all named the photo's
    # subject; a tile without it is a "scene"); ranking by length alone gave .16, .94 on the old sample
    ar_first, top_relevant = relevance_quality(kept, rejected)
    assert ar_first >= 0.85 and top_relevant >= 0.95, (ar_first, top_relevant)
    assert main(args) == 0 and read_summary(out)["rows_written"] == 0  # a rerun of the finished run does nothing
    assert read_summary(out)["already_done"] == summary["rows_out"]
    assert main([*args, "--set", "partitions=3", "--set", "shuffle=sort"]) == 0  # replaces, never duplicates;
    # the comments-captions join over 3 image_id partitions gives the same result as over one
    order = [("image_id", "ascending"), ("rank", "ascending")]
    assert read_table(kept_dir, PURIFIED).sort_by(order).equals(kept.sort_by(order))
    assert len(read_table(rejected_dir, REJECTED)) == len(rejected)


def test_purify_inputs_fail_before_ray(tmp_path, capsys):
    from uniqa.schema import SPLIT_COLUMNS

    row = {"image_id": "a", "image_uri": "/a.jpg", "dataset": "d", "task": "quality", "mos": 1.0, "mos_norm": 1.0,
           "level": "perfect", **{c: "train" for c in SPLIT_COLUMNS}}
    write_table(pa.Table.from_pylist([row]), str(tmp_path / "m"), MANIFEST)
    write_table(pa.Table.from_pylist([{"image_id": "a", "task": "aesthetics", "caption": "c", "backend": "b",
                                       "model": "m", "prompt_version": "v1", "error": None}]),
                str(tmp_path / "c"), CAPTIONS)
    base = ["purify", "--manifest", str(tmp_path / "m"), "--captions", str(tmp_path / "c"), "--out", str(tmp_path)]
    assert main(base) == 2
    assert "has no aesthetics rows" in capsys.readouterr().err
    assert main(base[:3] + ["--captions", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert main(base + ["--set", "keep=0"]) == 2
    assert "keep must be an int >= 1" in capsys.readouterr().err


def test_embedder_weights_are_checked_before_ray(tmp_path, monkeypatch):
    import uniqa.runtime
    from uniqa.purification.run import check_embedder

    monkeypatch.setattr(uniqa.runtime, "init_ray", lambda *a, **k: pytest.fail("Ray started"))
    with pytest.raises(UniqaError, match="no such checkpoint: .*missing.pt"):
        check_embedder(EmbedderConfig(model="uniqa-tiny", pretrained=str(tmp_path / "missing.pt")))
    with pytest.raises(UniqaError, match="neither a checkpoint path nor an open_clip tag"):
        check_embedder(EmbedderConfig(model="uniqa-tiny", pretrained="weights"))  # a tag by the one rule
    with pytest.raises(UniqaError, match="unknown model 'nope'"):
        check_embedder(EmbedderConfig(model="nope"))
    check_embedder(EmbedderConfig(name="bow", model="nope"))  # bow loads nothing


def test_comments_meet_their_captions_within_a_partition():
    from uniqa.partition import PARTITION
    from uniqa.purification.join import attach_captions, caption_side, comment_side

    tasks = ["aesthetics", "aesthetics", "quality", "aesthetics"]
    manifest = pa.table({"image_id": ["a", "b", "c", "d"], "task": tasks,
                         "comments": [["nice light"], ["bad crop", "ok"], ["x"], []]})
    captions = pa.table({"image_id": ["b", "a", "c", "z"], "task": ["aesthetics"] * 4,
                         "caption": ["cap b", None, "cap c", "cap z"], "error": [None, "failed", None, None]})
    left, right = comment_side(manifest, 4), caption_side(captions, 4)
    assert left["image_id"].to_pylist() == ["a", "b"]  # aesthetics rows with comments only
    assert right["image_id"].to_pylist() == ["b", "c", "z"]  # error-free captions only
    rows = pa.concat_tables([right, left])
    joined = pa.concat_tables([attach_captions(rows.filter(pa.compute.equal(rows[PARTITION], p)))
                               for p in range(4)])
    got = {r["image_id"]: (r["comments"], r["caption"]) for r in joined.to_pylist()}
    assert got == {"a": (["nice light"], None), "b": (["bad crop", "ok"], "cap b")}
