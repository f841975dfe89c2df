"""``uniqa tune`` on Ray: an 8-trial ASHA sweep on the sample corpus (early stops, an injected failure that is
never the best, the best adapter exported and scored on the test side only), and SIGKILL of the driver + rerun
(finished trials are not run again; every trial once in the table)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from killed_driver import wait_until_job_ended

from uniqa.cli import main

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SWEEP = """\
kind: adapter
base: {{model: uniqa-tiny, epochs: 4}}
search_space:
  lr: {{loguniform: [1.0e-4, 1.0e-2]}}
  epochs: {{choice: [3, 4]}}
  weight_decay: {{choice: [0.0, 1.0e-4]}}
  batch_size: {{choice: [16, 32]}}
  hidden: {{choice: [8, 32]}}
  prompt_set: {{choice: [single, ensemble]}}
  train_views: {{choice: [1, 2]}}
num_samples: 8
max_concurrent: {concurrency}
scheduler: {{kind: asha, max_t: 4, grace_period: 1, reduction_factor: 2}}
"""
COLUMNS = ["trial_id", "trial", "config_lr", "config_epochs", "config_weight_decay", "config_batch_size",
           "config_hidden", "config_prompt_set", "config_train_views", "best_val_srcc", "epochs_run", "stopped_early",
           "seconds", "error", "starts"]


@pytest.fixture(scope="module")
def cached(small_kadid, tmp_path_factory):
    """A 160-image KADID-format manifest (20 images of each of the 8 references of ``small_kadid``) and its feature
    cache (uniqa-tiny, 2 training views), shared by every test here."""
    import pyarrow as pa

    sys.path.insert(0, str(Path(__file__).parent))
    from test_adapt import _cached_features

    from uniqa.data.prepare import prepare
    from uniqa.schema import MANIFEST
    from uniqa.tables import write_table

    root = tmp_path_factory.mktemp("tune")
    prepare("kadid10k", small_kadid, str(root / "full"))
    table = pq.read_table(root / "full").sort_by("image_id")
    groups = table["group"].to_pylist()
    keep = [i for g in sorted(set(groups)) for i in [j for j, x in enumerate(groups) if x == g][:20]]
    write_table(table.take(pa.array(keep)), str(root / "manifest"), MANIFEST)
    features = _cached_features(str(root / "manifest"), 2, str(root / "features"))
    return root, str(root / "manifest"), features


def _sweep(root: Path, name: str, concurrency: int = 2) -> str:
    path = root / f"{name}.yaml"
    path.write_text(SWEEP.format(concurrency=concurrency))
    return str(path)


@pytest.mark.timeout(900)
def test_asha_sweep_failure_and_best_export(ray_session, cached, capsys, monkeypatch):
    from sweep_faults import MESSAGE, failing

    import uniqa.tuning.adapter
    from uniqa.adapters.head import load_head
    from uniqa.adapters.training import correlations, predict
    from uniqa.features.read import load_features
    from uniqa.tables import read_columns

    root, manifest, features = cached
    out = root / "asha"
    monkeypatch.setattr(uniqa.tuning.adapter, "adapter_trial", failing(uniqa.tuning.adapter.adapter_trial, {3}))
    start = time.perf_counter()
    # one trial at a time: which trials ASHA stops then does not depend on the order concurrent trials report in
    code = main(["tune", "--config", _sweep(root, "asha", concurrency=1), "--manifest", manifest,
                 "--features", features, "--out", str(out), "--quiet"])
    seconds = time.perf_counter() - start
    printed = capsys.readouterr().out
    assert code == 1  # an errored trial leaves the sweep incomplete: a rerun retries it
    assert "INCOMPLETE: 1 missing" in printed
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert list(rows[0]) == COLUMNS
    assert [r["trial"] for r in rows] == list(range(8)) and all(r["starts"] == 1 for r in rows)
    errored = [r for r in rows if r["error"]]
    assert [r["trial"] for r in errored] == [3]
    assert "RuntimeError" in errored[0]["error"] and errored[0]["error"].endswith("): " + MESSAGE.format(3))
    assert errored[0]["epochs_run"] == 0 and np.isnan(errored[0]["best_val_srcc"])
    good = [r for r in rows if not r["error"]]
    stopped = [r for r in good if r["stopped_early"]]
    assert stopped and all(r["epochs_run"] < r["config_epochs"] for r in stopped)  # ASHA stopped some
    assert any(r["epochs_run"] == r["config_epochs"] for r in good)  # and let some finish
    best = json.loads((out / "_summary.json").read_text())["details"]["best"]
    assert best["trial"] != 3 and best["best_val_srcc"] == max(r["best_val_srcc"] for r in good)
    assert "trial  lr" in printed and f"best: trial {best['trial']} val_srcc" in printed
    # the export: retrained from the same seed, it reproduces the trial's validation SRCC; only it sees the test side
    test = json.loads((out / "test.json").read_text())
    n_test = sum(side == "test" for side in read_columns(manifest, ["split_0"])["split_0"].to_pylist())
    assert test["trial"] == best["trial"] and test["n_test"] == n_test > 0 and test["split"] == 0
    assert test["val_srcc"] == pytest.approx(best["best_val_srcc"], abs=1e-6)
    summary = json.loads((out / "_summary.json").read_text())
    assert (summary["rows_in"], summary["rows_out"], summary["rows_with_errors"]) == (8, 7, 1)
    assert summary["rows_missing"] == 1 and summary["rows_written"] == 8 and summary["already_done"] == 0
    # RUN/best is the head `uniqa score --heads quality=RUN/best` loads; on the cached test views it gives test.json
    head = load_head(str(out / "best")).eval()
    assert head.hidden == best["config_hidden"]
    m = read_columns(manifest, ["image_id", "mos_norm", "split_0"]).to_pylist()
    ids = [r["image_id"] for r in m if r["split_0"] == "test"]
    mos = np.array([r["mos_norm"] for r in m if r["split_0"] == "test"])
    pred = predict(head, torch.from_numpy(load_features(features, ids, 2, 10).test))
    assert correlations(pred, mos)["srcc"] == pytest.approx(test["srcc"], abs=1e-6)
    assert "base" in (out / "best.yaml").read_text()  # (no bound on ``seconds``: a busy machine may be 3x slower)
    print(f"8-trial ASHA sweep: {seconds:.0f} s, {len(stopped)} stopped early")


@pytest.mark.timeout(900)
def test_sigkill_and_rerun_does_not_redo_finished_trials(ray_session, cached, capsys):
    root, manifest, features = cached
    out = root / "killed"
    # trials of 200-300 epochs without early stops (2-4 s each with Tune reusing the trial actor): the kill
    # after 3 finished trials lands well before the sweep's end, however fast this machine runs them
    sweep = Path(_sweep(root, "killed", concurrency=1))
    sweep.write_text(sweep.read_text().replace("epochs: {choice: [3, 4]}", "epochs: {choice: [200, 300]}")
                     .replace("scheduler: {kind: asha, max_t: 4, grace_period: 1, reduction_factor: 2}",
                              "scheduler: {kind: fifo}"))
    assert "[200, 300]" in sweep.read_text() and "fifo" in sweep.read_text()
    args = ["tune", "--config", str(sweep), "--manifest", manifest, "--features", features, "--out", str(out),
            "--quiet"]
    address = ray_session.get_runtime_context().gcs_address
    started = time.time()  # the job's workers start after this
    proc = subprocess.Popen([sys.executable, "-m", "uniqa.cli", *args, "--ray-address", address],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ledger = out / "_ledger"
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline:
            done = [p for p in ledger.glob("*.complete.*")] if ledger.exists() else []
            if len(done) >= 3:
                break
            assert proc.poll() is None, "the sweep ended before it was killed"
            time.sleep(0.5)
        else:
            pytest.fail("no 3 finished trials in time")
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # the driver only (it joined the test's Ray: no other process of its own)
        proc.wait()
    wait_until_job_ended(proc.pid, started)  # its trials' actors are gone: none writes beside the rerun
    completed = {p.name.split(".")[0] for p in ledger.glob("*.complete.*")}
    assert len(completed) >= 3 and not (out / "results.parquet").exists()

    code = main(args)
    assert code == 0
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert len(rows) == 8 and len({r["trial_id"] for r in rows}) == 8  # every trial once
    starts = {r["trial_id"]: r["starts"] for r in rows}
    assert all(not r["error"] for r in rows)
    summary = json.loads((out / "_summary.json").read_text())
    finished = summary["details"]["finished_before"]  # from the ledger: completed before the kill, not run again
    # Tune saves its state after every step: only a trial that finished in the moment before the kill reruns
    assert set(finished) <= completed and len(finished) >= 2
    assert all(starts[t] == 1 for t in finished) and all(starts[t] == 2 for t in completed - set(finished))
    assert summary["details"]["restored"] is True and summary["already_done"] == len(finished)
    assert summary["rows_written"] == 8 - len(finished) and summary["complete"]
    assert sum(starts.values()) >= 8 and all(s in (1, 2) for s in starts.values())
    print(f"killed with {len(completed)} trials complete ({len(finished)} saved as finished by Tune); starts per "
          f"trial after the rerun: {[starts[t] for t in sorted(starts)]}; seconds per trial: "
          f"{sorted(round(r['seconds'], 1) for r in rows)}")


@pytest.mark.timeout(600)
def test_sweep_on_s3_storage(ray_session, cached, s3_bucket, capsys):
    """RUN on s3://: Tune's experiment, the table, the best adapter and the test numbers land there, and a rerun
    restores the finished sweep instead of running it again."""
    from uniqa import storage
    from uniqa.adapters.head import load_head

    root, manifest, features = cached
    sweep = root / "s3.yaml"
    sweep.write_text(SWEEP.format(concurrency=2).replace("num_samples: 8", "num_samples: 2"))
    out = f"{s3_bucket}/sweeps/q"
    args = ["tune", "--config", str(sweep), "--manifest", manifest, "--features", features, "--out", out, "--quiet"]
    assert main(args) == 0
    rows = pq.read_table(io.BytesIO(storage.read_bytes(f"{out}/results.parquet"))).to_pylist()
    assert len(rows) == 2 and not any(r["error"] for r in rows)
    assert load_head(f"{out}/best").hidden in (8, 32)
    assert json.loads(storage.read_bytes(f"{out}/test.json"))["n_test"] == 40
    assert main(args) == 0  # nothing left to run: restored, both trials already done
    summary = json.loads(storage.read_bytes(f"{out}/_summary.json"))
    assert summary["details"]["restored"] is True and summary["already_done"] == 2
    rows = pq.read_table(io.BytesIO(storage.read_bytes(f"{out}/results.parquet"))).to_pylist()
    assert [r["starts"] for r in rows] == [1, 1]


@pytest.mark.timeout(600)
def test_pretrain_sweep_fits_a_torchtrainer_per_trial(ray_session, tmp_path, capsys, monkeypatch):
    """Two pretrain trials: one fits its own TorchTrainer (Ray Data + Train outside the trial's placement group)
    and reports its final loss and the zero-shot SRCC of its checkpoint on a held-out manifest (the metric); the
    other is made to fail and is reported, never the best."""
    import yaml
    from sweep_faults import MESSAGE, failing

    import uniqa.tuning.pretrain
    from tests.test_pretrain import write_corpus
    from tests.test_tune import write_manifest
    from uniqa.tuning.config import SchedulerConfig, TuneConfig
    from uniqa.tuning.sweep import run_tune

    corpus = write_corpus(tmp_path, n_images=16, broken=0)
    manifest = write_manifest(tmp_path / "manifest", [f"held{i}" for i in range(8)], corpus)  # 4 test images
    cfg = TuneConfig(kind="pretrain", base=dict(model="uniqa-tiny", steps=2, batch_size=8, checkpoint_every=2,
                                                warmup_steps=1, cpus_per_worker=0.5, decode_cpus=0.5, threads=1),
                     search_space={"lr": {"grid": [1e-3, 3e-3]}}, metric="zero_shot_srcc", mode="max", num_samples=1,
                     max_concurrent=1, resources={"cpu": 0.1}, scheduler=SchedulerConfig(kind="fifo"))
    monkeypatch.setattr(uniqa.tuning.pretrain, "pretrain_trial", failing(uniqa.tuning.pretrain.pretrain_trial, {1}))
    out = tmp_path / "run"
    summary = run_tune(manifest, None, corpus, str(out), cfg, progress=False)
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert [r["config_lr"] for r in rows] == [1e-3, 3e-3]
    assert rows[0]["error"] is None and -1 <= rows[0]["best_zero_shot_srcc"] <= 1 and rows[0]["epochs_run"] == 1
    zero_shot = pq.read_table(out / "trials" / rows[0]["trial_id"] / "zero-shot" / "results.parquet").to_pylist()
    ensemble = [r for r in zero_shot if r["prompt_set"] == "quality-ensemble"]
    assert len(ensemble) == 1 and ensemble[0]["n_test"] == 4 and ensemble[0]["leaked"] == 0  # held out: on record
    assert ensemble[0]["srcc"] == pytest.approx(rows[0]["best_zero_shot_srcc"])
    assert "RuntimeError" in rows[1]["error"] and rows[1]["error"].endswith("): " + MESSAGE.format(1))
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["trial"] == 0 and best["config"] == {"lr": 1e-3}
    assert Path(best["checkpoint"]).is_dir() and (Path(best["checkpoint"]).parent / "metrics.jsonl").exists()
    assert (summary.rows_in, summary.rows_out, summary.rows_with_errors, summary.exit_code) == (2, 1, 1, 1)
