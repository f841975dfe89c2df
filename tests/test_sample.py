"""The embedded sample corpus: formats, determinism, MOS rules, comment noise, and the dataset adapters."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from uniqa.cli import main
from uniqa.data import distortions as D
from uniqa.data.sample import COMMENTS_FILE, TEXT_FILES, checksum, contents, held_out_contents
from uniqa.data.sample_comments import EMOJI, EXCLAMATIONS, OFF_TOPIC, PRAISE, RELEVANT, comment_thread
from uniqa.data.treatments import TREATMENTS, vote_histogram
from uniqa.stage import read_summary

# sha256 of dmos.csv + AVA.txt + the comments JSON for seed 0 (text only: image bytes may differ across
# Pillow/zlib builds). Changing the corpus rules on purpose means updating this literal.
GOLDEN_TEXT_SHA256_SEED0 = "4964c97c55dfc5790992eeb0625db67485a9d66b2b17c3b36b9fb56e1835a101"
NAME = re.compile(r"^I(\d\d)_(\d\d)_(\d\d)\.png$")


def dmos_rows(root: str) -> list[dict[str, str]]:
    with open(Path(root) / "iqa" / "dmos.csv", newline="") as f:
        return list(csv.DictReader(f))


def ava_lines(root: str) -> list[list[str]]:
    return [line.split(" ") for line in (Path(root) / "iaa" / "AVA.txt").read_text().splitlines()]


def ava_json(root: str) -> list[dict]:
    return json.loads((Path(root) / "iaa" / COMMENTS_FILE).read_text(encoding="utf-8"))["images"]


def test_iqa_part_is_in_kadid_format(sample_corpus):
    rows = dmos_rows(sample_corpus)
    assert list(rows[0]) == ["dist_img", "ref_img", "dmos", "var"]
    n_refs, n_dist = len(contents()), len(D.DISTORTIONS)
    assert n_refs >= 32 and n_dist >= 12  # enough references and distortion types to decide (issue: numbers that hold)
    assert len(rows) == n_refs * n_dist * 5 == 2400
    images = Path(sample_corpus) / "iqa" / "images"
    assert sorted(p.name for p in images.iterdir()) == sorted([r["dist_img"] for r in rows] + [
        f"I{i:02d}.png" for i in range(1, n_refs + 1)])
    for r in rows:
        ref, dist, level = NAME.match(r["dist_img"]).groups()
        assert r["ref_img"] == f"I{ref}.png" and 1 <= int(dist) <= n_dist and 1 <= int(level) <= 5
        assert 1.0 <= float(r["dmos"]) <= 5.0 and 0.3 <= float(r["var"]) <= 0.8
    ref = Image.open(images / "I01.png")
    assert ref.size == (128, 128) and ref.mode == "RGB"
    assert Image.open(images / "I01_04_05.png").size == ref.size


def test_dmos_strictly_decreases_with_level_for_every_distortion(sample_corpus):
    series = defaultdict(dict)
    for r in dmos_rows(sample_corpus):
        ref, dist, level = NAME.match(r["dist_img"]).groups()
        series[(ref, dist)][int(level)] = float(r["dmos"])
    assert len(series) == len(contents()) * len(D.DISTORTIONS)
    for key, by_level in series.items():
        values = [by_level[lv] for lv in range(1, 6)]
        assert all(a > b for a, b in zip(values, values[1:])), (key, values)


def test_distortions_get_measurably_worse_with_level(sample_corpus):
    images = Path(sample_corpus) / "iqa" / "images"
    for r in (1, 5):
        ref = np.asarray(Image.open(images / f"I{r:02d}.png"), dtype=np.float64)
        for d in D.DISTORTIONS:
            mse = [np.mean((np.asarray(Image.open(images / f"I{r:02d}_{d.id:02d}_{lv:02d}.png")) - ref) ** 2)
                   for lv in range(1, 6)]
            assert all(0 < a < b for a, b in zip(mse, mse[1:])), (r, d.name, mse)


def test_dmos_formula_golden_values():
    blur, sat = D.DISTORTIONS[0], D.DISTORTIONS[7]
    assert D.dmos(blur, 1) == pytest.approx(4.4) and D.dmos(blur, 5) == pytest.approx(1.0)
    assert D.dmos(sat, 5) == pytest.approx(2.6) and D.dmos(blur, 5, jitter=-0.08) == 1.0
    assert D.rating_variance(blur, 5) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="level must be one of"):
        D.apply(blur, np.zeros((4, 4, 3), np.uint8), 6, np.random.default_rng(0))
    k = D.line_kernel(7, 90.0)
    assert k.sum() == pytest.approx(1.0) and np.count_nonzero(k[:, 3]) == 7 and np.count_nonzero(k) == 7


def test_iaa_part_is_in_ava_format(sample_corpus):
    lines, entries = ava_lines(sample_corpus), ava_json(sample_corpus)
    assert len(lines) == len(entries) == len(contents()) * len(TREATMENTS) == 320
    images = Path(sample_corpus) / "iaa" / "images"
    for i, (fields, entry) in enumerate(zip(lines, entries)):
        assert len(fields) == 15 and fields[0] == str(i + 1) and all(f.isdigit() for f in fields)
        assert entry["filename"] == f"{fields[1]}.jpg" and entry["split"] in ("train", "test")
        assert 80 <= sum(map(int, fields[2:12])) <= 220
        assert 5 <= len(entry["sentences"]) <= 15 and all(set(s) >= {"raw"} for s in entry["sentences"])
        with Image.open(images / entry["filename"]) as im:
            assert im.format == "JPEG" and max(im.size) == 128


def test_iaa_split_never_cuts_a_content_and_holds_out_the_iqa_test_references(sample_corpus, tmp_path):
    from uniqa.data.prepare import prepare
    from uniqa.schema import MANIFEST
    from uniqa.tables import read_table

    split_of = defaultdict(set)
    for entry in ava_json(sample_corpus):
        split_of[int(entry["filename"][:-4]) // 100 - 9000].add(entry["split"])
    assert all(len(s) == 1 for s in split_of.values()) and len(split_of) == 40
    test = {p for p, s in split_of.items() if s == {"test"}}
    assert test == held_out_contents() and len(test) == 8  # 64 IAA test images
    prepare("kadid10k", str(Path(sample_corpus) / "iqa"), str(tmp_path / "kadid"))
    kadid = read_table(str(tmp_path / "kadid"), MANIFEST, columns=["group", "split_0"]).to_pylist()
    assert {int(r["group"][1:3]) for r in kadid if r["split_0"] == "test"} == test  # the same contents


def test_votes_follow_the_treatment_scores(sample_corpus):
    good, bad = {"thirds", "harmonious", "well_exposed"}, {"centred_tilted", "edge_cut", "clashing", "muddy"}
    by_photo = defaultdict(dict)
    for fields in ava_lines(sample_corpus):
        ident = int(fields[1])
        votes = np.array(fields[2:12], dtype=float)
        by_photo[ident // 100][TREATMENTS[ident % 100 - 1].name] = (votes @ np.arange(1, 11)) / votes.sum()
    for photo, means in by_photo.items():
        assert min(means[t] for t in good) > max(means[t] for t in bad) + 1.0, (photo, means)
    counts = vote_histogram(6.0, 1.3, 5000, np.random.default_rng(1))
    assert sum(counts) == 5000 and abs(np.dot(counts, np.arange(1, 11)) / 5000 - 6.0) < 0.1


def _kind(comment: str, treatment: str) -> str:
    relevant = {t.format(s=c.subject) for t in RELEVANT[treatment] for c in contents()}
    for kind, pool in (("exclamation", EXCLAMATIONS), ("emoji", EMOJI), ("off_topic", OFF_TOPIC), ("praise", PRAISE)):
        if comment in pool:
            return kind
    return "relevant" if comment in relevant else "empty" if not comment.strip() else "other"


def test_comments_mix_relevant_remarks_with_ava_noise(sample_corpus):
    kinds = Counter()
    for entry in ava_json(sample_corpus):
        treatment = TREATMENTS[int(entry["filename"][:-4]) % 100 - 1].name
        raws = [s["raw"] for s in entry["sentences"]]
        per = Counter(_kind(c, treatment) for c in raws)
        assert per["other"] == 0, raws  # every comment is a relevant remark for THIS treatment, or noise
        distinct_relevant = len({c for c in raws if _kind(c, treatment) == "relevant"})
        assert 2 <= distinct_relevant <= len(raws) // 2, raws  # the rest (>= half) is noise, duplicates included
        kinds.update(per)
        kinds["duplicate"] += len(raws) - len(set(raws))
    assert all(kinds[k] >= 3 for k in ("exclamation", "emoji", "off_topic", "praise", "empty", "duplicate")), kinds


def test_comment_thread_is_deterministic_per_rng():
    a = comment_thread("muddy", "cat", np.random.default_rng(3))
    assert a == comment_thread("muddy", "cat", np.random.default_rng(3))
    assert a != comment_thread("muddy", "cat", np.random.default_rng(4))


def test_golden_text_checksum_for_seed_0(sample_corpus):
    assert checksum(sample_corpus, TEXT_FILES) == GOLDEN_TEXT_SHA256_SEED0


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_builds_are_deterministic_and_seed_dependent(sample_corpus, tmp_path, capsys):
    from uniqa.data.sample import build_iqa

    # every byte of the IQA part again (the IAA part is rebuilt byte for byte in the S3 test below)
    assert build_iqa(str(tmp_path / "seed0" / "iqa"), seed=0) == 2400
    assert checksum(str(tmp_path / "seed0" / "iqa")) == checksum(str(Path(sample_corpus) / "iqa"))
    assert main(["data", "sample", "--out", str(tmp_path / "seed1"), "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("sample: 2760 images written")  # 2,400 + 40 references + 320
    printed = read_summary(str(tmp_path / "seed1"))["details"]
    assert printed["iqa_distorted_images"] == 2400 and printed["iaa_images"] == 320
    assert printed["sha256_all"] == checksum(str(tmp_path / "seed1"))
    assert printed["sha256_all"] != checksum(sample_corpus) and printed["sha256_text"] != GOLDEN_TEXT_SHA256_SEED0
    for rel in TEXT_FILES:
        assert checksum(str(tmp_path / "seed1"), (rel,)) != checksum(sample_corpus, (rel,)), rel


def test_both_parts_load_through_the_adapters(sample_corpus, tmp_path):
    from uniqa.data.prepare import prepare
    from uniqa.schema import MANIFEST, SPLIT_COLUMNS, validate_manifest
    from uniqa.tables import read_table

    iqa = prepare("kadid10k", str(Path(sample_corpus) / "iqa"), str(tmp_path / "kadid"))
    iaa = prepare("ava", str(Path(sample_corpus) / "iaa"), str(tmp_path / "ava"))
    assert iqa["rows"] == 2400 and iaa["rows"] == 320
    assert iqa["split_0"] == {"test": 480, "train": 1920} and iaa["split_0"] == {"test": 64, "train": 256}
    kadid = validate_manifest(read_table(str(tmp_path / "kadid"), MANIFEST)).to_pylist()
    assert {r["task"] for r in kadid} == {"quality"} and len({r["group"] for r in kadid}) == len(contents())
    for col in SPLIT_COLUMNS:
        sides = defaultdict(set)
        for r in kadid:
            sides[r["group"]].add(r[col])
        assert all(len(s) == 1 for s in sides.values()), col  # a reference never straddles a split
    best = max(kadid, key=lambda r: r["mos"])
    assert best["image_id"].endswith("_01.png") and best["level"] in ("good", "perfect")
    ava = validate_manifest(read_table(str(tmp_path / "ava"), MANIFEST)).to_pylist()
    split = {e["filename"]: e["split"] for e in ava_json(sample_corpus)}
    assert all(r["split_0"] == split[Path(r["image_uri"]).name] for r in ava)
    assert all(5 <= len(r["comments"]) <= 15 for r in ava) and {r["task"] for r in ava} == {"aesthetics"}


def test_iaa_part_builds_identically_on_s3(sample_corpus, s3_bucket):
    from uniqa.data.sample import build_iaa

    assert build_iaa(f"{s3_bucket}/sample/iaa", seed=0) == 320
    files = ("AVA.txt", COMMENTS_FILE, "images/900101.jpg", "images/900808.jpg")
    assert checksum(f"{s3_bucket}/sample/iaa", files) == checksum(str(Path(sample_corpus) / "iaa"), files)
    assert checksum(f"{s3_bucket}/sample/iaa") == checksum(str(Path(sample_corpus) / "iaa"))


def test_sample_cli_rejects_a_negative_seed(tmp_path, capsys):
    assert main(["data", "sample", "--out", str(tmp_path / "s"), "--seed", "-1"]) == 2
    assert "error: sample seed must be a non-negative integer, got -1" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
