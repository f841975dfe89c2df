"""Curation (``uniqa filter``): the --where language, per-group KLL thresholds against numpy within the stated
rank bound, error rows always rejected, kept + rejected = input with no row twice (local, joined with a
manifest, on S3), kept/ readable as a manifest by ``uniqa score``, and bad input as one error before Ray."""

from __future__ import annotations

import glob
import json
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from uniqa import storage
from uniqa.cli import main as uniqa_main
from uniqa.curation import quantiles
from uniqa.curation.config import FilterConfig
from uniqa.curation.decide import Plan, block_sketches, split
from uniqa.curation.expression import parse
from uniqa.errors import UniqaError
from uniqa.schema import MANIFEST, validate_manifest
from uniqa.stage import read_summary
from uniqa.tables import parquet_files, read_columns, read_table

GROUP_SIZES = {"a": 2600, "b": 900, "c": 150}  # folders /data/<g>/...; a, b above k=400 (sketch estimates)
FRACTION = 0.3


def synthetic_scores(n_per_group: dict[str, int] = GROUP_SIZES, seed: int = 0) -> pa.Table:
    """Scores of a synthetic set: per-folder shifted distributions, every 53rd row a scoring error (null scores),
    every 71st row a null aesthetics score without an error."""
    rng = np.random.default_rng(seed)
    ids, uris, quality = [], [], []
    for g, n in n_per_group.items():
        shift = {"a": 0.0, "b": 0.2, "c": -0.1}.get(g, 0.0)
        ids += [f"{g}{i:05d}" for i in range(n)]
        uris += [f"/data/{g}/img{i}.jpg" for i in range(n)]
        quality.append(rng.normal(0.5 + shift, 0.15, n))
    q = np.concatenate(quality)
    a = rng.random(len(q))
    error = np.array([None] * len(q), dtype=object)
    error[::53] = "cannot decode image"
    q[::53] = np.nan
    a[::53] = np.nan
    a[5::71] = np.nan
    return pa.table({
        "image_id": ids, "image_uri": uris, "quality": pa.array(q, mask=np.isnan(q)),
        "aesthetics": pa.array(a, mask=np.isnan(a)), "error": pa.array(error, pa.string()),
        "model_checksum": ["m"] * len(q),
    })


def write_parts(table: pa.Table, folder: str, parts: int = 4) -> str:
    fs, root = storage.resolve(folder)
    fs.create_dir(root, recursive=True)
    step = -(-len(table) // parts)
    for i in range(parts):
        pq.write_table(table.slice(i * step, step), f"{root}/part-{i:05d}.parquet", filesystem=fs)
    return folder


def manifest_for(scores: pa.Table, missing: int = 7) -> pa.Table:
    """A valid manifest of every scored image but the last ``missing``: dataset by id prefix, unlabelled,
    with list and map columns."""
    n = len(scores) - missing
    ids = scores["image_id"].to_pylist()[:n]
    table = pa.table({
        "image_id": ids, "image_uri": scores["image_uri"].to_pylist()[:n],
        "dataset": ["koniq" if i.startswith("a") else "spaq" for i in ids], "task": ["quality"] * n,
        "mos": pa.nulls(n, pa.float64()), "mos_norm": pa.nulls(n, pa.float64()), "level": pa.nulls(n, pa.string()),
        **{f"split_{i}": ["train"] * n for i in range(10)},
        "comments": pa.array([["nice"]] * n, pa.list_(pa.string())),
        "attrs": pa.array([[("w", 1.0)]] * n, pa.map_(pa.string(), pa.float64())),
    })
    return validate_manifest(table)


def read_out(folder: str) -> pa.Table:
    return read_columns(parquet_files(folder), None) if storage.exists(folder) else pa.table({})


def check_partition(out: str, scores: pa.Table) -> tuple[pa.Table, pa.Table]:
    """kept + rejected = input, no row twice; every error row rejected with its error."""
    kept, rejected = read_out(storage.join(out, "kept")), read_out(storage.join(out, "rejected"))
    ids = kept["image_id"].to_pylist() + rejected["image_id"].to_pylist()
    assert len(ids) == len(set(ids)) == len(scores)
    assert set(ids) == set(scores["image_id"].to_pylist())
    errors = {r["image_id"]: r["error"] for r in scores.to_pylist() if r["error"] is not None}
    assert errors and not errors.keys() & set(kept["image_id"].to_pylist())
    by_id = {r["image_id"]: r for r in rejected.to_pylist()}
    for image_id, error in errors.items():
        assert by_id[image_id]["error"] == error and by_id[image_id]["reason"] == "scoring error"
    summary = read_summary(out)
    assert summary["rows_in"] == summary["rows_out"] == len(scores) and summary["complete"]
    assert (summary["details"]["kept"], summary["details"]["rejected"]) == (len(kept), len(rejected))
    assert summary["rows_with_errors"] == len(errors)
    return kept, rejected


# ---------------------------------------------------------------------------------------------- no Ray


def test_where_language_evaluates_like_numpy():
    rng = np.random.default_rng(1)
    q, a = rng.random(500), rng.random(500)
    batch = {"quality": q, "aesthetics": a, "q-ens": a}
    cases = {
        "quality >= 0.6 and aesthetics >= 0.5": (q >= 0.6) & (a >= 0.5),
        "not (quality < 0.3 or aesthetics < .3)": ~((q < 0.3) | (a < 0.3)),
        "0.2 <= quality < 0.9 AND q-ens != 0.5": (0.2 <= q) & (q < 0.9) & (a != 0.5),
        "quality > 0.9 or quality < 0.1 and aesthetics == aesthetics": (q > 0.9) | ((q < 0.1) & (a == a)),
        "-1e-3 < quality": q > -1e-3,
    }
    for text, want in cases.items():
        expr = parse(text)
        assert np.array_equal(expr.mask(batch), want), text
        assert np.array_equal(parse(str(expr)).mask(batch), want), str(expr)  # the printed form round-trips
    assert parse("a >= 1 or b < 2 and c == 3").columns() == {"a", "b", "c"}
    assert str(parse("a >= 1 or b < 2 and c == 3")) == "a >= 1 or (b < 2 and c == 3)"


@pytest.mark.parametrize("text, found", [
    ("quality >= ", "end of the expression"), ("quality >= 0.6 and", "end of the expression"),
    ("quality", "comparison operator"), ("(quality > 1", "expected ')'"), ("quality > 1)", "position 12"),
    ("__import__('os').system('x')", "position 12"), ("quality > 1; import os", "';'"),
    ("quality + 1 > 2", "'+'"), ("1 < 2", "compares two numbers"), ("", "empty"),
])
def test_where_syntax_errors_are_one_uniqa_error(text, found):
    with pytest.raises(UniqaError, match="where") as e:
        FilterConfig(where=text)
    assert found in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("kwargs, found", [
    ({}, "exactly one rule"), ({"where": "quality > 0.5", "top_fraction": 0.3, "by": "quality"}, "exactly one rule"),
    ({"top_fraction": 0.0, "by": "quality"}, "(0, 1]"), ({"top_fraction": 1.5, "by": "quality"}, "(0, 1]"),
    ({"top_fraction": -0.2, "by": "quality"}, "(0, 1]"), ({"top_fraction": 0.3}, "--by"),
    ({"where": "quality > 0.5", "group_by": "dataset"}, "--top-fraction only"), ({"top_fraction": 0.3, "by": "q",
                                                                                  "sketch_k": 2}, "sketch_k"),
])
def test_config_rejects_bad_rules(kwargs, found):
    with pytest.raises(UniqaError) as e:
        FilterConfig(**kwargs)
    assert found in str(e.value)
    assert FilterConfig(top_fraction=1, by="quality").top_fraction == 1


def test_per_group_thresholds_from_merged_block_sketches_match_numpy_within_rank_bound():
    """20 blocks of 10,000 rows, 3 groups, k=200: every merged group's threshold lies between numpy's quantiles
    at 1 - f -+ the stated rank error, and keeps f of the group within that bound."""
    rng = np.random.default_rng(7)
    k, f = 200, 0.3
    eps = quantiles.rank_error(k)
    assert 0.01 < eps < 0.02
    plan = Plan(score_columns=("quality",), by="quality", fraction=f, group_by="grp", sketch_k=k)
    merged, values = {}, {}
    for _ in range(20):
        grp = rng.choice(["x", "y", "z"], 10_000, p=[0.6, 0.3, 0.1])
        q = rng.gamma(2.0, 1.0, 10_000) + (grp == "y")
        batch = pa.table({"image_id": [str(i) for i in range(10_000)], "quality": q, "grp": grp,
                          "error": pa.nulls(10_000, pa.string())})
        for g, column, blob in zip(*(block_sketches(batch, plan)[c].to_pylist() for c in ("group", "column",
                                                                                           "sketch"))):
            quantiles.merge(merged, (g, column), blob, k)
        for g in "xyz":
            values.setdefault(g, []).append(q[grp == g])
    for g in "xyz":
        x = np.concatenate(values[g])
        t = quantiles.top_threshold(merged[(g, "quality")], f)
        lo, hi = np.quantile(x, [1 - f - eps, 1 - f + eps], method="inverted_cdf")
        assert lo <= t <= hi, (g, t, lo, hi)
        assert abs(np.mean(x >= t) - f) <= eps, g
        assert merged[(g, "quality")].n == len(x)
    assert merged[(None, "quality")].n == 200_000


def test_exact_small_group_keeps_ceil_of_fraction():
    x = np.random.default_rng(3).random(37)
    s = quantiles.sketch(x, 400)
    assert not s.is_estimation_mode()
    for f in (0.1, 0.3, 0.5, 1.0):
        assert np.sum(x >= quantiles.top_threshold(s, f)) == math.ceil(f * len(x))


def test_split_rejects_errors_and_nulls_with_reasons():
    scores = synthetic_scores({"a": 300})
    plan = Plan(score_columns=("quality", "aesthetics"), where="quality >= 0.5 and aesthetics >= 0.5",
                kept_columns=("image_id", "quality", "aesthetics"),
                rejected_columns=("image_id", "quality", "aesthetics", "error", "reason"),
                edges={"quality": np.linspace(-1, 2, 11).tolist()})
    kept, rejected, stats = split(scores, plan)
    rows = scores.to_pylist()
    want = {r["image_id"] for r in rows if r["error"] is None and r["aesthetics"] is not None
            and r["quality"] >= 0.5 and r["aesthetics"] >= 0.5}
    assert set(kept["image_id"].to_pylist()) == want and len(kept) + len(rejected) == 300
    reasons = dict(zip(rejected["image_id"].to_pylist(), rejected["reason"].to_pylist()))
    assert reasons["a00000"] == "scoring error" and reasons["a00005"] == "no aesthetics score"
    for r in rows:
        if r["image_id"] in reasons and reasons[r["image_id"]].startswith("failed"):
            failed = [p for p, ok in (("quality >= 0.5", r["quality"] >= 0.5),
                                      ("aesthetics >= 0.5", r["aesthetics"] >= 0.5)) if not ok]
            assert reasons[r["image_id"]] == "failed: " + "; ".join(failed)
    assert stats["errors"] == 6 and stats["kept"] == len(want)
    assert sum(stats["hist"]["quality"][1]) == len(want)
    assert sum(stats["hist"]["quality"][0]) == sum(r["error"] is None for r in rows)


# ----------------------------------------------------------------------------- bad input before Ray


@pytest.fixture
def no_ray(monkeypatch):
    """Any Ray start fails the test: the error must come first."""
    def refuse(*a, **k):
        raise AssertionError("Ray was started before the input was checked")

    monkeypatch.setattr("uniqa.runtime.init_ray", refuse)


@pytest.mark.parametrize("args, found", [
    (["--where", "quality >= 0.6 and sharpness > 1"], "unknown column 'sharpness'"),
    (["--where", "quality >= 0.6 and"], "end of the expression"),
    (["--top-fraction", "1.5", "--by", "quality"], "(0, 1]"),
    (["--top-fraction", "0", "--by", "quality"], "(0, 1]"),
    (["--top-fraction", "0.3", "--by", "sharpness"], "--by 'sharpness' is not a score column"),
    (["--where", "quality > 0.1", "--top-fraction", "0.3", "--by", "quality"], "exactly one rule"),
    ([], "exactly one rule"),
    (["--top-fraction", "0.3", "--by", "quality", "--group-by", "dataset"], "pass --manifest"),
    (["--top-fraction", "0.3", "--by", "quality", "--group-by", "nope", "--manifest", "MANIFEST"], "'nope'"),
])
def test_bad_input_is_one_error_line_before_ray(args, found, tmp_path, capsys, no_ray):
    scores = write_parts(synthetic_scores({"a": 40}), str(tmp_path / "scores"), parts=1)
    manifest = write_parts(manifest_for(synthetic_scores({"a": 40})), str(tmp_path / "manifest"), parts=1)
    args = [manifest if a == "MANIFEST" else a for a in args]
    code = uniqa_main(["filter", "--scores", scores, "--out", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1 and found in err, err
    assert not os.path.exists(tmp_path / "out")


# ------------------------------------------------------------------------------------------------ Ray


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_top_fraction_per_folder_thresholds_and_partition(ray_session, tmp_path):
    from uniqa.curation.run import run_filter
    from uniqa.scoring.inputs import resolve_input

    scores = synthetic_scores()
    src = write_parts(scores, str(tmp_path / "scores"))
    out = str(tmp_path / "out")
    summary = run_filter(src, None, out, FilterConfig(top_fraction=FRACTION, by="quality", group_by="folder"),
                         progress=False)
    assert summary.exit_code == 0
    kept, rejected = check_partition(out, scores)
    details = read_summary(out)["details"]
    eps = details["quantiles"]["rank_error"]
    assert details["quantiles"]["k"] == 400 and eps == pytest.approx(quantiles.rank_error(400))
    assert set(details["thresholds"]) == {"/data/a", "/data/b", "/data/c"}
    rows = scores.to_pylist()
    kept_ids = set(kept["image_id"].to_pylist())
    for g in GROUP_SIZES:
        x = np.array([r["quality"] for r in rows if r["image_uri"].startswith(f"/data/{g}/") and r["error"] is None])
        t = details["thresholds"][f"/data/{g}"]["quality"]
        lo, hi = np.quantile(x, [1 - FRACTION - eps, 1 - FRACTION + eps], method="inverted_cdf")
        assert lo <= t <= hi and details["thresholds"][f"/data/{g}"]["rows"] == len(x)
        if details["thresholds"][f"/data/{g}"]["exact"]:  # the small group: exactly ceil(f n) kept
            assert np.sum(x >= t) == math.ceil(FRACTION * len(x))
        want = {r["image_id"] for r in rows if r["image_uri"].startswith(f"/data/{g}/") and r["error"] is None
                and r["quality"] >= t}
        assert want == {i for i in kept_ids if i.startswith(g)}
    assert details["thresholds"]["/data/a"]["exact"] is False  # the bound was actually exercised
    assert kept.column_names == ["image_id", "image_uri", "quality", "aesthetics", "model_checksum"]
    assert rejected.column_names == kept.column_names + ["error", "reason"]
    assert open(os.path.join(out, "histograms.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    inp = resolve_input(os.path.join(out, "kept"))  # what `uniqa score --input OUT/kept` starts from
    assert inp.kind == "manifest" and inp.rows == len(kept)
    # a rerun of the finished run does nothing (issue 24: rerun-when-done); another rule, or an output missing a
    # file, replaces the output instead of adding to it
    again = run_filter(src, None, out, FilterConfig(top_fraction=FRACTION, by="quality", group_by="folder"),
                       progress=False)
    assert (again.rows_written, again.already_done, again.rows_out, again.complete) == (0, len(scores), len(scores),
                                                                                         True)
    assert read_summary(out)["details"]["thresholds"] == details["thresholds"]
    os.remove(sorted(glob.glob(os.path.join(out, "kept", "part-*.parquet")))[0])
    redone = run_filter(src, None, out, FilterConfig(top_fraction=FRACTION, by="quality", group_by="folder"),
                        progress=False)
    assert redone.rows_written == len(scores)
    check_partition(out, scores)
    other = run_filter(src, None, out, FilterConfig(top_fraction=0.5, by="quality", group_by="folder"),
                       progress=False)
    assert other.rows_written == len(scores) and other.details["kept"] != details["kept"]
    check_partition(out, scores)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_where_with_manifest_join_on_s3(ray_session, s3_bucket, tmp_path):
    """Scores and manifest on S3, joined in 3 hash buckets: kept rows are a valid manifest with its list/map
    columns, rows missing from the manifest are rejected, and the counts by reason add up."""
    scores = synthetic_scores({"a": 500, "b": 400})
    manifest = manifest_for(scores)
    src = write_parts(scores, f"{s3_bucket}/scores", parts=3)
    man = write_parts(manifest, f"{s3_bucket}/manifest", parts=2)
    out = f"{s3_bucket}/curated"
    code = uniqa_main(["filter", "--scores", src, "--manifest", man, "--out", out, "--quiet", "--set",
                       "bucket_rows=300", "--where", "quality >= 0.5 and not aesthetics < 0.4"])
    assert code == 0
    kept, rejected = check_partition(out, scores)
    details = read_summary(out)["details"]
    assert details["join"] == {"buckets": 3}
    table = read_table(storage.join(out, "kept"), MANIFEST)  # a manifest other stages read
    assert set(manifest.column_names) <= set(table.column_names)
    assert "quality" in table.column_names and table["attrs"][0].as_py() == [("w", 1.0)]
    rows = {r["image_id"]: r for r in scores.to_pylist()}
    in_manifest = set(manifest["image_id"].to_pylist())
    want = {i for i, r in rows.items() if i in in_manifest and r["error"] is None and r["aesthetics"] is not None
            and r["quality"] >= 0.5 and not r["aesthetics"] < 0.4}
    assert set(kept["image_id"].to_pylist()) == want
    reasons = dict(zip(rejected["image_id"].to_pylist(), rejected["reason"].to_pylist()))
    missing = set(rows) - in_manifest
    assert {i for i, r in reasons.items() if r == "not in manifest"} == {i for i in missing
                                                                          if rows[i]["error"] is None}
    assert sum(details["rejected_by_reason"].values()) == len(rejected)
    assert details["thresholds"] == {"*": [["quality", ">=", 0.5], ["aesthetics", "<", 0.4]]}
    assert storage.read_bytes(storage.join(out, "histograms.png"))[:4] == b"\x89PNG"
    assert not storage.exists(storage.join(out, "_work"))


@pytest.mark.ray
@pytest.mark.timeout(240)
def test_top_fraction_per_manifest_dataset(ray_session, tmp_path):
    from uniqa.curation.run import run_filter

    scores = synthetic_scores()
    src = write_parts(scores, str(tmp_path / "scores"))
    man = write_parts(manifest_for(scores, missing=0), str(tmp_path / "manifest"), parts=2)
    out = str(tmp_path / "out")
    run_filter(src, man, out, FilterConfig(top_fraction=0.5, by="quality", group_by="dataset"), progress=False)
    kept, _ = check_partition(out, scores)
    details = json.loads(open(os.path.join(out, "_summary.json")).read())["details"]
    eps = details["quantiles"]["rank_error"]
    rows = scores.to_pylist()
    for dataset, prefix in (("koniq", ("a",)), ("spaq", ("b", "c"))):
        x = np.array([r["quality"] for r in rows if r["image_id"].startswith(prefix) and r["error"] is None])
        t = details["thresholds"][dataset]["quality"]
        lo, hi = np.quantile(x, [0.5 - eps, 0.5 + eps], method="inverted_cdf")
        assert lo <= t <= hi
        assert set(kept.filter(pc.equal(kept["dataset"], dataset))["image_id"].to_pylist()) == {
            r["image_id"] for r in rows if r["image_id"].startswith(prefix) and r["error"] is None
            and r["quality"] >= t}


def test_out_inside_scores_is_refused(tmp_path, capsys, no_ray):
    scores = write_parts(synthetic_scores({"a": 20}), str(tmp_path / "scores"), parts=1)
    code = uniqa_main(["filter", "--scores", scores, "--out", str(tmp_path / "scores" / "curated"), "--where",
                       "quality > 0.5"])
    assert code == 2 and "inside --scores" in capsys.readouterr().err
