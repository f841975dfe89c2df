"""The README's main command (`make demo` -> `uniqa demo`) end to end on the embedded sample, and the stage contract
on its outputs: every stage folder holds one ``_summary.json`` of the same key set."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from uniqa.cli import main
from uniqa.stage import SUMMARY_FILE, StageSummary

# Each stage output folder of the demo and the stage that wrote it.
STAGE_FOLDERS = {
    "captions": "caption", "purified": "purify", "corpus": "corpus", "scores/iqa": "score", "scores/iaa": "score",
    "evaluation/iqa": "evaluate", "evaluation/iaa": "evaluate",
}


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_runs_every_stage(ray_session, sample_corpus, tmp_path, capsys):
    out = tmp_path / "demo"
    shutil.copytree(sample_corpus, out / "sample")  # the demo reuses a built sample (same seed)
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "demo_summary.json").read_text())
    results = {(r["dataset"], r["head"]): r for r in summary["results"]}
    assert set(results) == {(d, h) for d in ("kadid10k", "ava") for h in ("quality", "aesthetics")}
    assert {r["split"] for r in results.values()} == {"split_0"}
    assert results["kadid10k", "quality"]["n"] == 90 and results["kadid10k", "quality"]["missing"] == 0
    assert all(-1 <= r["srcc"] <= 1 and r["excluded"] == 0 for r in results.values())
    metrics = pq.read_table(out / "evaluation" / "iqa" / "metrics.parquet").to_pylist()
    assert metrics == [results["kadid10k", "quality"], results["kadid10k", "aesthetics"]]
    assert pq.read_table(out / "captions").num_rows == 360 + 64
    assert pq.read_table(out / "scores" / "iqa").num_rows == 360
    assert pq.read_table(out / "scores" / "iaa").num_rows == 64
    assert pq.read_table(out / "corpus").num_rows > 424
    assert "zero-shot results" in printed and "SRCC" in printed

    # The stage contract, on this same run: one summary shape for every stage, each complete.
    keys = set(StageSummary(stage="x", inputs={}, output="", rows_in=0, rows_out=0).to_dict())
    for folder, stage in STAGE_FOLDERS.items():
        written = json.loads((out / folder / SUMMARY_FILE).read_text())
        assert set(written) == keys, (folder, set(written) ^ keys)
        assert written["stage"] == stage and written["complete"] and written["output"] == str(out / folder), folder
    assert [s["stage"] for s in summary["stages"]] == [
        "caption", "caption", "purify", "corpus", "score", "score", "evaluate", "evaluate"]
