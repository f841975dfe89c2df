"""The README's main command (`make demo` -> `uniqa demo`) end to end on the embedded sample."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from uniqa.cli import main


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_runs_every_stage(ray_session, sample_corpus, tmp_path, capsys):
    out = tmp_path / "demo"
    shutil.copytree(sample_corpus, out / "sample")  # the demo reuses a built sample (same seed)
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "demo_summary.json").read_text())
    assert set(summary["results"]) == {"kadid10k (sample) quality", "ava (sample) aesthetics"}
    assert summary["results"]["kadid10k (sample) quality"]["images"] == 90
    assert pq.read_table(out / "captions").num_rows == 360 + 64
    assert pq.read_table(out / "scores" / "iqa").num_rows == 360
    assert pq.read_table(out / "scores" / "iaa").num_rows == 64
    assert pq.read_table(out / "corpus").num_rows > 424
    assert "zero-shot results" in printed and "SRCC" in printed
