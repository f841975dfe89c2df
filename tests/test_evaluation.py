"""``uniqa evaluate``: metrics against mos_norm per dataset / head / split, on a lower-is-better dataset too."""

from __future__ import annotations

import importlib.util
import io
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from uniqa.data.prepare import PrepareConfig, prepare
from uniqa.errors import UniqaError
from uniqa.evaluation.config import EvaluateConfig
from uniqa.evaluation.metrics import krcc, plcc, srcc
from uniqa.evaluation.run import METRICS_SCHEMA, run_evaluate
from uniqa.schema import MANIFEST, SPLIT_COLUMNS
from uniqa.stage import StageSummary
from uniqa.tables import read_table

ROWS = 40
PIPELINE = os.path.join(os.path.dirname(__file__), "..", "pipelines", "evaluate.py")
SUMMARY_KEYS = set(StageSummary("x", {}, "", 0, 0).to_dict())


@pytest.fixture
def dmos_manifest(tmp_path) -> str:
    """A DMOS-style (lower is better) ``table`` dataset of 40 images, prepared into a manifest."""
    dmos = np.linspace(0.5, 9.5, ROWS)[np.random.default_rng(0).permutation(ROWS)]
    lines = ["path,score"] + [f"img_{i:02d}.png,{d:.4f}" for i, d in enumerate(dmos)]
    (tmp_path / "dmos.csv").write_text("\n".join(lines) + "\n")
    out = str(tmp_path / "manifest")
    prepare("table", str(tmp_path / "dmos.csv"), out, PrepareConfig(check_files=False), higher_is_better="false",
            mos_min="0", mos_max="10", dataset="dmosset")
    return out


def write_scores(manifest: str, out, columns) -> str:
    """A scores table for every manifest row: ``columns`` maps a head name to fn(manifest table) -> values."""
    m = read_table(manifest, MANIFEST)
    data = {"image_id": m["image_id"], "image_uri": m["image_uri"]}
    data |= {name: pa.array(fn(m), pa.float64()) for name, fn in columns.items()}
    data |= {"error": pa.nulls(len(m), pa.string()), "model_checksum": pa.array(["c"] * len(m))}
    out.mkdir()
    pq.write_table(pa.table(data), out / "part-0.parquet")
    return str(out)


def norm(m):
    return m["mos_norm"].to_numpy()


def test_lower_is_better_dataset_positive_for_a_perfect_predictor(dmos_manifest, tmp_path, capsys):
    m = read_table(dmos_manifest, MANIFEST)
    assert srcc(m["mos"].to_numpy(), norm(m)) == pytest.approx(-1.0)  # the dataset really is lower-is-better
    scores = write_scores(dmos_manifest, tmp_path / "scores", {
        "perfect": norm, "increasing": lambda m: np.exp(3 * norm(m)), "raw_mos": lambda m: m["mos"].to_numpy()})
    out = str(tmp_path / "eval")
    summary = run_evaluate(scores, dmos_manifest, out, EvaluateConfig(split="all"))
    table = pq.read_table(f"{out}/metrics.parquet")
    assert table.schema == METRICS_SCHEMA
    assert len(table) == 3 * len(SPLIT_COLUMNS) == summary.rows_out == summary.rows_in
    rows = table.to_pylist()
    assert [r["split"] for r in rows[:10]] == list(SPLIT_COLUMNS)
    for r in rows:
        assert r["dataset"] == "dmosset" and r["side"] == "test" and r["n"] == 8  # 20% of 40 images
        assert r["excluded"] == 0 and r["missing"] == 0 and r["note"] is None
        sign = -1.0 if r["head"] == "raw_mos" else 1.0
        assert (r["srcc"], r["krcc"]) == pytest.approx((sign, sign)), r
        if r["head"] == "perfect":
            assert r["plcc"] == pytest.approx(1.0)
    assert {r["head"] for r in rows} == {"perfect", "increasing", "raw_mos"}
    assert summary.stage == "evaluate" and summary.unit == "rows" and summary.exit_code == 0
    assert summary.details["table"] == rows and summary.details["shared_ids"] == summary.details["labelled_rows"] > 30
    over = {(o["head"]): o for o in summary.details["over_splits"]}
    assert over["raw_mos"]["srcc_median"] == pytest.approx(-1.0) and over["perfect"]["srcc_std"] == pytest.approx(0)
    on_disk = json.loads((tmp_path / "eval" / "_summary.json").read_text())
    assert set(on_disk) == SUMMARY_KEYS and on_disk["stage"] == "evaluate" and on_disk["rows_out"] == 30
    assert (tmp_path / "eval" / "metrics.csv").read_text().splitlines()[0].split(",") == [
        f'"{name}"' for name in METRICS_SCHEMA.names]
    printed = capsys.readouterr().out
    assert "SRCC" in printed and "over 10 splits" in printed and printed.count("dmosset") == 33


def test_errors_nulls_and_missing_rows_are_excluded_and_counted(dmos_manifest, tmp_path):
    m = read_table(dmos_manifest, MANIFEST)
    test = pc.equal(m["split_0"], "test").to_numpy(zero_copy_only=False)
    test_ids = m["image_id"].filter(pc.equal(m["split_0"], "test")).to_pylist()
    rng = np.random.default_rng(1)
    noisy = norm(m) + rng.normal(0, 0.1, ROWS)
    scores = write_scores(dmos_manifest, tmp_path / "scores", {"q": lambda _: noisy})
    t = pq.read_table(f"{scores}/part-0.parquet")
    ids = t["image_id"].to_pylist()
    error = [("decode failed" if i == test_ids[0] else None) for i in ids]
    q = [None if i == test_ids[1] else v for i, v in zip(ids, t["q"].to_pylist())]
    keep = pc.invert(pc.equal(t["image_id"], test_ids[2]))  # never scored
    t = t.set_column(t.schema.get_field_index("error"), "error", pa.array(error, pa.string()))
    t = t.set_column(t.schema.get_field_index("q"), "q", pa.array(q, pa.float64())).filter(keep)
    pq.write_table(t, f"{scores}/part-0.parquet")

    summary = run_evaluate(scores, dmos_manifest, str(tmp_path / "eval"), EvaluateConfig(), progress=False)
    [row] = summary.details["table"]
    assert (row["n"], row["excluded"], row["missing"]) == (8 - 3, 2, 1)
    used = test & ~np.isin(m["image_id"].to_numpy(zero_copy_only=False), test_ids[:3])
    for name, fn in (("srcc", srcc), ("plcc", plcc), ("krcc", krcc)):
        assert row[name] == pytest.approx(fn(noisy[used], norm(m)[used]))
    assert 0.3 < row["srcc"] < 1.0  # noisy but positive


def test_too_few_rows_give_null_metrics_with_the_reason(dmos_manifest, tmp_path):
    scores = write_scores(dmos_manifest, tmp_path / "scores", {"flat": lambda m: np.ones(len(m))})
    summary = run_evaluate(scores, dmos_manifest, str(tmp_path / "eval"), EvaluateConfig(), progress=False)
    [row] = pq.read_table(tmp_path / "eval" / "metrics.parquet").to_pylist()
    assert row["srcc"] is None and row["n"] == 8 and "predictions are constant" in row["note"]
    assert summary.rows_with_errors == 1 and summary.exit_code == 0


def test_a_rerun_of_a_finished_evaluation_does_nothing(dmos_manifest, tmp_path):
    """The same config and inputs into an output that still holds its metrics: nothing is computed (the summary
    is the finished run's); a missing metrics file or another config computes the metrics again."""
    scores = write_scores(dmos_manifest, tmp_path / "scores", {"q": norm})
    out = str(tmp_path / "eval")
    first = run_evaluate(scores, dmos_manifest, out, EvaluateConfig(), progress=False)
    again = run_evaluate(scores, dmos_manifest, out, EvaluateConfig(), progress=False)
    assert (again.rows_written, again.already_done, again.rows_out) == (0, first.rows_out, first.rows_out)
    assert again.details["table"] == first.details["table"] and again.complete
    (tmp_path / "eval" / "metrics.csv").unlink()
    redone = run_evaluate(scores, dmos_manifest, out, EvaluateConfig(), progress=False)
    assert redone.rows_written == first.rows_out and (tmp_path / "eval" / "metrics.csv").exists()
    other = run_evaluate(scores, dmos_manifest, out, EvaluateConfig(side="train"), progress=False)
    assert other.rows_written == 1 and other.details["side"] == "train"


def test_cli_and_pipeline_forwarder(dmos_manifest, tmp_path, capsys):
    from uniqa.cli import main

    spec = importlib.util.spec_from_file_location("pipelines_evaluate", PIPELINE)
    pipeline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pipeline)

    scores = write_scores(dmos_manifest, tmp_path / "scores", {"a": norm, "b": lambda m: -norm(m)})
    out = tmp_path / "eval"
    assert main(["evaluate", "--scores", scores, "--manifest", dmos_manifest, "--out", str(out), "--split", "split_3",
                 "--heads", "b"]) == 0
    printed = capsys.readouterr().out
    assert "evaluate: 1 rows written" in printed and "split_3" in printed
    [row] = pq.read_table(out / "metrics.parquet").to_pylist()
    assert (row["head"], row["split"], row["srcc"]) == ("b", "split_3", pytest.approx(-1.0))
    assert pipeline.main(["--scores", scores, "--manifest", dmos_manifest, "--out", str(out), "--quiet",
                          "--set", "side=train"]) == 0
    assert "SRCC" not in capsys.readouterr().out  # --quiet: the summary line only
    rows = pq.read_table(out / "metrics.parquet").to_pylist()
    assert [(r["head"], r["side"], r["n"]) for r in rows] == [("a", "train", 32), ("b", "train", 32)]


def test_bad_invocations_fail_with_one_line_before_any_work(dmos_manifest, tmp_path, capsys):
    from uniqa.cli import main

    scores = write_scores(dmos_manifest, tmp_path / "scores", {"q": norm})
    base = ["evaluate", "--scores", scores, "--manifest", dmos_manifest, "--out", str(tmp_path / "eval")]
    no_norm = tmp_path / "no_norm.parquet"
    pq.write_table(pq.read_table(dmos_manifest).drop_columns(["mos_norm"]), no_norm)
    no_split = tmp_path / "no_split.parquet"
    pq.write_table(pq.read_table(dmos_manifest).drop_columns(["split_7"]), no_split)
    other = write_scores(dmos_manifest, tmp_path / "other", {"q": norm})
    t = pq.read_table(f"{other}/part-0.parquet")
    pq.write_table(t.set_column(0, "image_id", pc.binary_join_element_wise("x", t["image_id"], "")),
                   f"{other}/part-0.parquet")
    cases = [
        (["--split", "split_10"], "split must be one of ['split_0'"),
        (["--side", "dev"], "side must be one of ['train', 'val', 'test'], got 'dev'"),
        (["--heads", "q,aesthetics"], "have no score column 'aesthetics'; score columns: ['q']"),
        (["--manifest", str(no_norm)], "has no column 'mos_norm'"),
        (["--manifest", str(no_split), "--split", "all"], "has no split column 'split_7'"),
        (["--scores", other], "share no image_id with the labelled test rows"),
        (["--scores", str(tmp_path / "nope")], "no such file or directory"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (extra, err)
    assert not (tmp_path / "eval").exists()
    with pytest.raises(UniqaError, match="split must be one of"):
        EvaluateConfig(split="official")


def test_s3_inputs_and_output(dmos_manifest, tmp_path, s3_bucket):
    from uniqa import storage

    write_scores(dmos_manifest, tmp_path / "scores", {"q": norm})
    for f in sorted((tmp_path / "manifest").glob("*.parquet")):
        storage.write_bytes(f"{s3_bucket}/manifest/{f.name}", f.read_bytes())
    storage.write_bytes(f"{s3_bucket}/scores/part-0.parquet", (tmp_path / "scores" / "part-0.parquet").read_bytes())
    summary = run_evaluate(f"{s3_bucket}/scores", f"{s3_bucket}/manifest", f"{s3_bucket}/eval", EvaluateConfig(),
                           progress=False)
    [row] = pq.read_table(io.BytesIO(storage.read_bytes(f"{s3_bucket}/eval/metrics.parquet"))).to_pylist()
    assert row["srcc"] == pytest.approx(1.0) and row["n"] == 8 and summary.output == f"{s3_bucket}/eval"
    assert json.loads(storage.read_bytes(f"{s3_bucket}/eval/_summary.json"))["stage"] == "evaluate"


def test_metric_rows_carry_bootstrap_intervals_over_reference_groups(tmp_path):
    """Quality rows resample whole references (``groups``); the interval equals the bootstrap module's on the same
    rows, so the demo's paired gains resample exactly as evaluate does."""
    from uniqa.evaluation.bootstrap import intervals
    from uniqa.evaluation.config import BootstrapConfig
    from uniqa.tables import write_table

    refs, per = 6, 12
    rng = np.random.default_rng(4)
    mos = rng.random(refs * per)
    ids = [f"kadid/I{r:02d}_{k:02d}.png" for r in range(refs) for k in range(per)]
    group = [f"I{r:02d}" for r in range(refs) for _ in range(per)]
    side = ["test" if r < 4 else "train" for r in range(refs) for _ in range(per)]
    write_table(pa.table({"image_id": ids, "image_uri": ids, "dataset": ["kadid"] * len(ids),
                          "task": ["quality"] * len(ids), "mos": mos, "mos_norm": mos, "level": ["fair"] * len(ids),
                          "group": group,
                          **{c: side for c in SPLIT_COLUMNS}}), str(tmp_path / "manifest"), MANIFEST)
    noisy = mos + rng.normal(0, 0.2, len(mos))
    (tmp_path / "scores").mkdir()
    pq.write_table(pa.table({"image_id": ids, "image_uri": ids, "q": noisy, "error": pa.nulls(len(ids), pa.string()),
                             "model_checksum": ["c"] * len(ids)}), tmp_path / "scores" / "part-0.parquet")
    cfg = EvaluateConfig(bootstrap=BootstrapConfig(resamples=300, seed=5, allow_few=True))
    summary = run_evaluate(str(tmp_path / "scores"), str(tmp_path / "manifest"), str(tmp_path / "eval"), cfg,
                           progress=False)
    assert METRICS_SCHEMA.names == ["dataset", "head", "split", "side", "n", "groups", "srcc", "plcc", "krcc",
                                    "srcc_lo", "srcc_hi", "plcc_lo", "plcc_hi", "excluded", "missing", "note",
                                    "leaked"]
    [row] = pq.read_table(tmp_path / "eval" / "metrics.parquet").to_pylist()
    assert summary.details["table"] == [row] and summary.details["bootstrap"]["resamples"] == 300
    assert (row["n"], row["groups"]) == (4 * per, 4)  # four test references
    assert row["leaked"] is None  # no summary names a model with a record: provenance unknown
    test = np.array(side) == "test"
    found = intervals(noisy[test], mos[test], np.array(group)[test], cfg.bootstrap)
    assert (row["srcc_lo"], row["srcc_hi"], row["plcc_lo"], row["plcc_hi"]) == (
        found["srcc"].lo, found["srcc"].hi, found["plcc"].lo, found["plcc"].hi)
    assert row["srcc_lo"] < row["srcc"] < row["srcc_hi"] and row["plcc_lo"] < row["plcc"] < row["plcc_hi"]
    header = (tmp_path / "eval" / "metrics.csv").read_text().splitlines()[0]
    assert '"groups","srcc","plcc","krcc","srcc_lo","srcc_hi","plcc_lo","plcc_hi"' in header


def test_undefined_metrics_have_no_interval_and_images_are_their_own_units(dmos_manifest, tmp_path, capsys):
    scores = write_scores(dmos_manifest, tmp_path / "scores", {"flat": lambda m: np.ones(len(m)), "q": norm})
    run_evaluate(scores, dmos_manifest, str(tmp_path / "eval"), EvaluateConfig())
    flat, q = pq.read_table(tmp_path / "eval" / "metrics.parquet").to_pylist()
    assert [flat[k] for k in ("srcc", "srcc_lo", "srcc_hi", "plcc_lo", "plcc_hi")] == [None] * 5
    assert q["groups"] == q["n"] == 8  # a dataset without references: each image its own unit
    assert q["srcc_lo"] == q["srcc_hi"] == pytest.approx(1.0)  # a perfect predictor on every resample
    printed = capsys.readouterr().out
    assert "SRCC [95% CI]" in printed and "+1.000 [+1.00, +1.00]" in printed
