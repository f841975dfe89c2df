"""The Ray Data scoring job: every row out, same scores as the API for any batch size / actor count,
s3:// in and out, resuming a partial output, and exactly-once after a SIGKILL of the driver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import test_scoring
import yaml
from killed_driver import wait_until_job_ended
from test_scoring import check_zoo_rows, tiny_config
from zoo import good_images

from uniqa import storage
from uniqa.scoring.run import run_score

pytestmark = pytest.mark.ray
# the fixtures shared with the Ray-free tests
tiny_model, mixed_images, api_rows = test_scoring.tiny_model, test_scoring.mixed_images, test_scoring.api_rows
HEADS = ("quality", "aesthetics", "trained")


def read_scores(out: str) -> dict[str, dict]:
    """Output rows by image_id; fails on a duplicate id or a stray non-part file."""
    fs, path = storage.resolve(out)
    files = [f for f in storage.list_files(out, (".parquet",))]
    assert files and all(os.path.basename(f).startswith("part-") for f in files), files
    table = pa.concat_tables([pq.read_table(storage.resolve(f)[1], filesystem=fs) for f in files])
    ids = table["image_id"].to_pylist()
    assert len(ids) == len(set(ids)), "duplicate image_id in the output"
    return {row["image_id"]: row for row in table.to_pylist()}


def assert_same_scores(a: dict[str, dict], b: dict[str, dict], heads=HEADS, tol: float = 1e-5) -> None:
    """The same rows and errors; scores equal up to ``tol``: the runs differ in batch size, actor count and torch
    threads (the API in this process, actors with Ray's OMP_NUM_THREADS), which may change float reduction order."""
    assert a.keys() == b.keys()
    for key, row in a.items():
        assert row["error"] == b[key]["error"], key
        for head in heads:
            if row[head] is None:
                assert b[key][head] is None, (key, head)
            else:
                assert row[head] == pytest.approx(b[key][head], abs=tol), (key, head)


@pytest.mark.timeout(300)
def test_zoo_every_row_same_scores_for_any_batching_on_s3_and_as_api(
    ray_session, s3_bucket, tiny_model, mixed_images, api_rows, tmp_path
):
    """Run 1: a local list of the zoo + good images; small batches, small files, one actor.
    Run 2: the same images as a manifest on S3 (good images copied to S3, the zoo left local), through
    pipelines/score.py with its config on S3, into an S3 output that already holds two rows and a stray
    temporary; other batches, blocks and files, two actors, embeddings. Both: every row, the zoo's errors,
    the API's scores."""
    from uniqa import sink
    from uniqa.schema import scores_schema
    from uniqa.scoring.inputs import uri_id

    uris, good = mixed_images["uris"], set(mixed_images["good"])
    n, n_bad = len(uris), sum(not c.ok for c in mixed_images["cases"])
    api = {r["image_id"]: r for r in api_rows["rows"]}
    listing = tmp_path / "images.txt"
    listing.write_text("\n".join(uris) + "\n")
    small = tiny_config(tiny_model, batch_size=3, num_actors=1, rows_per_block=7, rows_per_file=5, num_cpus=0.5,
                        decode_cpus=0.5)
    summary = run_score(str(listing), str(tmp_path / "small"), small, progress=False)
    assert (summary.rows_written, summary.rows_with_errors, summary.rows_out, summary.complete) == (n, n_bad, n, True)
    assert len(os.listdir(tmp_path / "small")) >= n // 5  # many small files: the units of resume
    small_rows = read_scores(str(tmp_path / "small"))
    check_zoo_rows({r["image_uri"]: r for r in small_rows.values()}, mixed_images)
    assert_same_scores(small_rows, api)
    assert len({r["model_checksum"] for r in small_rows.values()}) == 1

    ids, s3_uris = [uri_id(u) for u in uris], []
    for i, uri in enumerate(uris):
        s3_uris.append(f"{s3_bucket}/images/{i}.jpg" if uri in good else uri)
        if uri in good:
            storage.write_bytes(s3_uris[-1], open(uri, "rb").read())
    fs, key = storage.resolve(f"{s3_bucket}/manifest/part-00000.parquet")
    pq.write_table(pa.table({"image_id": ids, "image_uri": s3_uris, "dataset": ["x"] * n}), key, filesystem=fs)
    out, seeded = f"{s3_bucket}/scores", [api[uri_id(u)] for u in mixed_images["good"][:2]]
    schema = scores_schema(list(HEADS), embedding=True)
    sink.write_batch(pa.Table.from_pylist(seeded, schema=schema.schema), out, schema)  # as if from an earlier run
    storage.write_bytes(f"{out}/_tmp-0123.parquet", b"half a file from a killed run")
    job = {"input": f"{s3_bucket}/manifest", "out": out, "model": small.model, "heads": list(small.heads),
           "batch_size": 8, "num_actors": 2, "rows_per_block": 8, "rows_per_file": 64, "num_cpus": 0.25,
           "decode_cpus": 0.5, "embeddings": True}
    storage.write_bytes(f"{s3_bucket}/jobs/score.yaml", yaml.safe_dump(job).encode())
    assert run_pipeline(["--config", f"{s3_bucket}/jobs/score.yaml", "--quiet"]) == 0  # as `ray job submit` would
    summary = json.loads(storage.read_bytes(f"{out}/_summary.json"))
    counts = [summary[k] for k in ("already_done", "rows_written", "rows_with_errors", "rows_out")]
    assert counts == [2, n - 2, n_bad, n]
    assert not storage.exists(f"{out}/_tmp-0123.parquet")
    large_rows = read_scores(out)
    check_zoo_rows({uris[ids.index(k)]: r for k, r in large_rows.items()}, mixed_images)
    assert_same_scores(large_rows, small_rows)
    for key, row in large_rows.items():
        if row["error"] is None:
            assert np.allclose(row["embedding"], api[key]["embedding"], rtol=0, atol=1e-5)  # as assert_same_scores
        else:
            assert row["embedding"] is None


def run_pipeline(argv: list[str]) -> int:
    """``pipelines/score.py``'s main (the file `ray job submit` runs)."""
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "pipelines", "score.py")
    spec = importlib.util.spec_from_file_location("pipelines_score", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def _session_pids(sid: int) -> list[int]:
    """PIDs of processes still in the session ``sid`` (the killed driver's children)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    pids.append(int(entry))
            except (ProcessLookupError, PermissionError):
                pass
    return pids


@pytest.mark.slow
@pytest.mark.timeout(600)  # two runs, a wait for the killed job, a clean run: 180 s seen at load average 44
def test_sigkill_mid_run_then_rerun_equals_clean_run(ray_session, tiny_model, tmp_path):
    from uniqa.cli import main
    from uniqa.scoring.api import Scorer

    images = good_images(tmp_path / "images", 200, size=(40, 40))
    ids = [f"i{i:03d}" for i in range(200)]
    manifest = tmp_path / "manifest"
    manifest.mkdir()
    pq.write_table(pa.table({"image_id": ids, "image_uri": images}), manifest / "part-00000.parquet")
    out = tmp_path / "out"
    args = ["score", "--input", str(manifest), "--out", str(out), "--model", tiny_model["ckpt"], "--heads",
            "quality,aesthetics", "--batch-size", "8", "--quiet", "--set", "rows_per_block=16",
            "--set", "rows_per_file=16", "--set", "num_cpus=0.5", "--set", "decode_cpus=0.5"]
    address = ray_session.get_runtime_context().gcs_address
    log = open(tmp_path / "driver.log", "wb")
    started = time.time()  # the job's workers start after this
    proc = subprocess.Popen([sys.executable, "-m", "uniqa.cli", *args, "--ray-address", address],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 150
        while not (out.exists() and any(p.name.startswith("part-") for p in out.iterdir())):
            assert proc.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no part file within 150 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        for pid in _session_pids(proc.pid):  # whatever the killed driver had started
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
    wait_until_job_ended(proc.pid, started)  # no task of the killed job can still commit a file (nor race the rerun)
    killed_rows = sum(pq.read_metadata(p).num_rows for p in out.glob("part-*.parquet"))
    assert 0 < killed_rows < 200, killed_rows  # really killed mid-run

    assert main(args) == 0  # the rerun skips what the killed run finished
    resumed = read_scores(str(out))
    assert sorted(resumed) == ids
    assert not [p for p in out.iterdir() if p.name.startswith("_tmp-")]

    # A clean run of the same job in-process (the API gives the pipeline's scores: see the first test).
    clean = Scorer(tiny_config(tiny_model, heads=("quality", "aesthetics"), batch_size=64)).score(images, ids=ids)
    assert_same_scores(resumed, {r["image_id"]: r for r in clean}, heads=("quality", "aesthetics"))


@pytest.mark.parametrize("cpus, expected", [(0.5, 1), (2, 2)])
def test_scoring_actor_threads_follow_its_num_cpus(ray_session, tiny_model, cpus, expected):
    """The model actor of `uniqa score` (and the Scorer it holds) under Ray with num_cpus 0.5 and 2."""
    from dataclasses import replace

    from uniqa.scoring import config
    from uniqa.scoring.config import ScoreConfig
    from uniqa.scoring.score_stage import ScoreStage

    ray = ray_session
    cfg = config.preflight(ScoreConfig(model=tiny_model["ckpt"], num_cpus=cpus))

    class Probe(ScoreStage):
        def threads(self):
            import torch

            return torch.get_num_threads(), self.scorer.threads

    def threads_of(cfg):  # one actor at a time: a 2-CPU actor fills the test session
        actor = ray.remote(Probe).options(num_cpus=cpus).remote(cfg, "x", False)
        try:
            return ray.get(actor.threads.remote(), timeout=120)
        finally:
            ray.kill(actor)

    assert threads_of(cfg) == (expected, expected)
    assert threads_of(replace(cfg, threads=1)) == (1, 1)  # the knob overrides


@pytest.mark.timeout(300)
def test_spaq_manifest_is_scored_at_448(ray_session, tiny_model, tmp_path):
    """`uniqa score` on a SPAQ manifest decodes its photos at the manifest's decode_size (448 on the shorter side,
    as the reference): the API's scores at decode_size 448, not those of the photos as stored; the summary says so."""
    from dataset_fixtures import make_spaq_photos

    from uniqa.scoring.api import Scorer
    from uniqa.tables import read_columns

    manifest = make_spaq_photos(tmp_path)
    rows = read_columns(manifest, ["image_id", "image_uri"]).to_pydict()
    cfg = tiny_config(tiny_model, ("quality",), num_cpus=0.5, decode_cpus=0.5)
    summary = run_score(manifest, str(tmp_path / "scores"), cfg, progress=False)
    assert summary.complete and summary.details["decode"] == "448"
    scores = read_scores(str(tmp_path / "scores"))
    for decode_size, same in ((448, True), (None, False)):
        api = Scorer(tiny_config(tiny_model, ("quality",), decode_size=decode_size), device="cpu")
        expected = {r["image_id"]: r for r in api.score(rows["image_uri"], ids=rows["image_id"])}
        close = [abs(scores[k]["quality"] - expected[k]["quality"]) < 1e-5 for k in rows["image_id"]]
        assert all(close) if same else not any(close)


@pytest.mark.timeout(300)
def test_a_large_folder_is_listed_by_ray_and_resumes(ray_session, tiny_model, tmp_path, monkeypatch):
    """Issue 24: a folder of more than LISTED_WHOLE images is not listed on the driver: Ray lists it page by page
    while it scores (here pages of 4 images of a nested tree) and the driver counts it meanwhile. Every image
    once, the API's scores; a part file lost is scored again by the rerun, which skips the rest. A long list file
    of the same images (with repeats) likewise: each image once, the repeats counted."""
    import shutil

    from uniqa.scoring import inputs
    from uniqa.scoring import run as score_run
    from uniqa.scoring.api import Scorer
    from uniqa.scoring.inputs import uri_id

    images = good_images(tmp_path / "flat", 14, size=(40, 40))
    tree = []
    for i, src in enumerate(images):
        dst = tmp_path / "tree" / f"d{i % 3}" / ("deep" if i % 2 else "") / f"{i:03d}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
        tree.append(str(dst))
    monkeypatch.setattr(inputs, "LISTED_WHOLE", 5)
    monkeypatch.setattr(score_run, "LISTING_PAGE", 4)
    cfg = tiny_config(tiny_model, ("quality",), num_cpus=0.5, decode_cpus=0.5, rows_per_block=3, rows_per_file=3)
    out = str(tmp_path / "scores")
    assert inputs.resolve_input(str(tmp_path / "tree")).table is None  # left to Ray
    summary = run_score(str(tmp_path / "tree"), out, cfg, progress=False)
    assert (summary.rows_in, summary.rows_written, summary.rows_out, summary.complete) == (14, 14, 14, True)
    first = read_scores(out)
    assert sorted(first) == sorted(uri_id(u) for u in tree)
    api = Scorer(tiny_config(tiny_model, ("quality",)), device="cpu")
    assert_same_scores(first, {r["image_id"]: r for r in api.score(tree)}, heads=("quality",))

    lost = sorted(os.listdir(out))[-1]
    assert lost.startswith("part-")
    lost_rows = pq.read_metadata(os.path.join(out, lost)).num_rows
    os.remove(os.path.join(out, lost))
    again = run_score(str(tmp_path / "tree"), out, cfg, progress=False)
    assert (again.already_done, again.rows_written, again.rows_out) == (14 - lost_rows, lost_rows, 14)
    assert_same_scores(read_scores(out), first, heads=("quality",))
    with monkeypatch.context() as m:  # a rerun of the finished folder counts first and starts no Ray job
        m.setattr(score_run, "_score_rows", lambda *a: pytest.fail("a Ray job for a finished folder"))
        done = run_score(str(tmp_path / "tree"), out, cfg, progress=False)
    assert (done.rows_in, done.already_done, done.rows_written, done.complete) == (14, 14, 0, True)

    listing = tmp_path / "tree" / "images.txt"  # a long list, read by Ray too: relative paths, 3 repeats, a comment
    listing.write_text("# the tree\n" + "\n".join(os.path.relpath(u, listing.parent) for u in tree + tree[:3]))
    assert inputs.resolve_input(str(listing)).table is None
    from_list = run_score(str(listing), str(tmp_path / "from-list"), cfg, progress=False)
    assert (from_list.rows_in, from_list.rows_out, from_list.details["duplicates_in_input"]) == (14, 14, 3)
    assert_same_scores(read_scores(str(tmp_path / "from-list")), first, heads=("quality",))
    again = run_score(str(listing), str(tmp_path / "from-list"), cfg, progress=False)  # repeats: runs, finds nothing
    assert (again.rows_in, again.already_done, again.rows_written, again.complete) == (14, 14, 0, True)
