"""Captioning on Ray Data: the attributes backend on the sample corpus with resume, and the openai backend
end to end against a loopback OpenAI-compatible server that fails on purpose."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from killed_driver import wait_until_job_ended
from openai_server import FAILING_WIDTHS, OpenAIServer
from PIL import Image

from uniqa.captioning.config import CaptionConfig
from uniqa.cli import main
from uniqa.schema import CAPTIONS, MANIFEST, SPLIT_COLUMNS
from uniqa.stage import read_summary
from uniqa.tables import read_table, write_table

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def mixed_manifest(sample_corpus, tmp_path_factory) -> str:
    """18 rows of the sample: 12 KADID-format quality images (varied distortions) + 6 AVA aesthetics images."""
    from uniqa.data.prepare import prepare

    root = tmp_path_factory.mktemp("caption_manifest")
    prepare("kadid10k", os.path.join(sample_corpus, "iqa"), str(root / "iqa"))
    prepare("ava", os.path.join(sample_corpus, "iaa"), str(root / "iaa"))
    iqa = read_table(str(root / "iqa"), MANIFEST)
    iaa = read_table(str(root / "iaa"), MANIFEST)
    table = pa.concat_tables([iqa.take(list(range(0, 360, 30))), iaa.take(list(range(0, 64, 11)))],
                             promote_options="default")
    write_table(table, str(root / "mixed"), MANIFEST)
    return str(root / "mixed")


def captions_of(out: str) -> pa.Table:
    return read_table(out, CAPTIONS).sort_by("image_id")


@pytest.mark.timeout(300)
def test_attributes_captions_resume_equals_one_clean_run(ray_session, mixed_manifest, tmp_path, capsys):
    manifest = read_table(mixed_manifest, MANIFEST)
    clean, resumed = str(tmp_path / "clean"), str(tmp_path / "resumed")
    args = ["caption", "--manifest", mixed_manifest, "--backend", "attributes", "--quiet"]
    assert main(args + ["--out", clean]) == 0
    line = capsys.readouterr().out
    assert line.startswith("caption: 18 images written (0 with errors)") and "0 already done" in line
    assert "rows out 18 / rows in 18 (complete)" in line
    s = read_summary(clean)
    assert (s["stage"], s["unit"], s["inputs"]) == ("caption", "images", {"manifest": mixed_manifest})
    assert (s["rows_in"], s["rows_out"], s["rows_written"], s["already_done"], s["complete"]) == (18, 18, 18, 0, True)
    assert s["details"] == {"backend": "attributes", "model": "attributes-v2", "prompt_version": "v1",
                            "tasks": ["quality", "aesthetics"], "files_written": 1,
                            "identity": {"backend": "attributes", "model": "attributes-v2", "prompt_version": "v1",
                                         "prompts_file": None}}

    assert main(args + ["--out", resumed, "--limit", "7"]) == 1  # stopped half-way: rows missing
    assert "7 images written" in (line := capsys.readouterr().out) and "INCOMPLETE: 11 missing, rerun" in line
    assert len(captions_of(resumed)) == 7 and read_summary(resumed)["rows_missing"] == 11
    with open(os.path.join(resumed, "_tmp-killed.parquet"), "wb") as f:  # what a killed writer leaves
        f.write(b"partial")
    assert main(args + ["--out", resumed]) == 0
    line = capsys.readouterr().out
    assert "11 images written (0 with errors)" in line
    assert "7 already done; rows out 18 / rows in 18 (complete)" in line
    assert not os.path.exists(os.path.join(resumed, "_tmp-killed.parquet"))

    a, b = captions_of(clean), captions_of(resumed)
    assert a.drop(["measures"]).equals(b.drop(["measures"])) and len(b) == 18
    assert pc.count_distinct(b["image_id"]).as_py() == 18
    assert sorted(b["image_id"].to_pylist()) == sorted(manifest["image_id"].to_pylist())
    by_id = {r["image_id"]: r for r in manifest.to_pylist()}
    for row in b.to_pylist():
        m = by_id[row["image_id"]]
        assert row["task"] == m["task"] and row["error"] is None and row["prompt_version"] == "v1"
        assert f" {m['level']}" in row["caption"], row  # every caption states its level word
        assert row["backend"] == "attributes" and row["model"] == "attributes-v2"

    files = sorted(os.listdir(resumed))
    assert main(args + ["--out", resumed]) == 0  # nothing left: no work, nothing rewritten
    assert "0 images written (0 with errors)" in (line := capsys.readouterr().out) and "18 already done" in line
    assert sorted(os.listdir(resumed)) == files
    assert main(["caption", "--manifest", mixed_manifest, "--out", resumed, "--set", "prompt_version=v1",
                 "--backend", "openai", "--set", "openai.model=m"]) == 2
    assert "holds output made with backend='attributes', this run has backend='openai'" in capsys.readouterr().err


def synthetic_manifest(root, n: int = 12, behaviours: int = 6) -> tuple[str, dict[str, int]]:
    """n tiny random images whose widths cycle through the server's first ``behaviours`` behaviours (1: every
    image answered at once), plus one missing file."""
    rng = np.random.default_rng(7)
    levels = ["bad", "poor", "fair", "good", "perfect"]
    rows, widths = [], {}
    for i in range(n + 1):
        uri = str(root / f"img{i}.png")
        if i < n:
            widths[f"t/{i}"] = 40 + i % behaviours
            Image.fromarray(rng.integers(0, 255, (24, widths[f"t/{i}"], 3), dtype=np.uint8)).save(uri)
        rows.append({"image_id": f"t/{i}", "image_uri": uri, "dataset": "t", "task": ["quality", "aesthetics"][i % 2],
                     "mos": float(i), "mos_norm": i / n, "level": levels[min(4, i * 5 // (n + 1))],
                     **{c: "train" for c in SPLIT_COLUMNS}})
    write_table(pa.Table.from_pylist(rows), str(root / "manifest"), MANIFEST)
    return str(root / "manifest"), widths


@pytest.mark.timeout(300)
def test_openai_backend_end_to_end_with_failures(ray_session, s3_bucket, tmp_path, capsys, monkeypatch):
    """Also writes its captions to (moto) S3."""
    manifest, widths = synthetic_manifest(tmp_path)
    levels = {r["image_id"]: r["level"] for r in read_table(manifest, MANIFEST).to_pylist()}
    monkeypatch.setenv("UNIQA_TEST_KEY", "sk-loopback")
    out = f"{s3_bucket}/captions"
    # 3 s per attempt: an answered request never comes near it, even on a busy machine (with 0.5 s one could time
    # out, be retried, and change the attempt counts); the server's timeouts (sleep 15 s) stay far past it
    with OpenAIServer(model="test-vlm", api_key="sk-loopback", sleep_s=15.0) as server:
        code = main(["caption", "--manifest", manifest, "--out", out, "--backend", "openai", "--quiet",
                     "--set", f"openai.url={server.url}", "--set", "openai.model=test-vlm",
                     "--set", "openai.api_key_env=UNIQA_TEST_KEY", "--set", "openai.timeout_s=3",
                     "--set", "openai.max_retries=2", "--set", "openai.retry_wait_s=0.05",
                     "--set", "openai.batch_size=4", "--set", "openai.qps=50"])
        assert code == 0
        assert server.violations == []  # model, data-URL JPEG image and level word checked on every request
        assert sorted(server.attempts.values()) == sorted(
            [3 if w in FAILING_WIDTHS else 2 if w in (41, 44) else 1 for w in widths.values()])
    line = capsys.readouterr().out
    assert "13 images written (7 with errors)" in line and "rows out 13 / rows in 13 (complete)" in line
    assert read_summary(out)["details"]["model"] == "test-vlm"
    rows = {r["image_id"]: r for r in captions_of(out).to_pylist()}
    assert sorted(rows) == sorted(levels)  # row count in == row count out, one row per image
    for image_id, row in rows.items():
        assert row["backend"] == "openai" and row["model"] == "test-vlm" and row["prompt_version"] == "v1"
        if image_id not in widths:
            assert row["caption"] is None and "img12.png: file not found" in row["error"]
        elif widths[image_id] in FAILING_WIDTHS:
            assert row["caption"] is None and row["error"].startswith("failed after 3 attempts: ")
            assert len(row["error"]) <= 300 and "base64" not in row["error"]
        else:
            noun = "aesthetics of this image are" if row["task"] == "aesthetics" else "quality of this image is"
            assert row["caption"] == f"The {noun} {levels[image_id]}: test caption {widths[image_id]}x24."
            assert row["error"] is None


def part_files(out) -> list[str]:
    return sorted(f for f in os.listdir(out) if f.startswith("part-")) if os.path.isdir(out) else []


def image_digest(uri: str) -> str:
    """The server's key of an image: the SHA-1 of the JPEG our encoder sends for it (default openai settings)."""
    from uniqa.captioning.chat import data_url
    from uniqa.config import from_dict, parse_overrides
    from uniqa.data.images import load_image

    o = from_dict(CaptionConfig, parse_overrides(["openai.model=m"])).openai
    return hashlib.sha1(base64.b64decode(data_url(load_image(uri), o.max_pixels, o.jpeg_quality).split(",")[1])
                        ).hexdigest()


def start_killable(args: list[str], ray_address: str) -> subprocess.Popen:
    """``uniqa <args> --ray-address ADDRESS`` as its own process (group), a driver joining the tests' Ray cluster
    (warm workers: no second Ray to start), as ``ray job submit`` runs a pipeline on a cluster."""
    code = "import sys; from uniqa.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen([sys.executable, "-c", code, *args, "--ray-address", ray_address], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_when(proc: subprocess.Popen, out: str, parts: int, timeout_s: float = 150.0) -> None:
    """SIGKILL the driver once ``out`` holds ``parts`` committed files (or on timeout), then wait until Ray has
    ended its job and its workers (its tasks and actors are killed: none of them can commit a file after this
    returns)."""
    import psutil

    started = psutil.Process(proc.pid).create_time()  # the job's workers start after its driver
    deadline = time.monotonic() + timeout_s
    try:
        while len(part_files(out)) < parts and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    wait_until_job_ended(proc.pid, started)


@pytest.mark.timeout(300)
def test_caption_run_killed_half_way_resumes_exactly_once(ray_session, tmp_path, capsys):
    """SIGKILL a real ``uniqa caption`` driver after 3 of 9 rows are committed; the rerun asks the
    server only about the images not committed and ends with exactly one row per image, each as a clean run
    writes it (the server is deterministic: the caption states the level word and the image size)."""
    manifest, widths = synthetic_manifest(tmp_path, n=8, behaviours=1)
    table = read_table(manifest, MANIFEST)
    levels = {r["image_id"]: r["level"] for r in table.to_pylist()}
    digests = {i: image_digest(u) for i, u in zip(table["image_id"].to_pylist(), table["image_uri"].to_pylist())
               if i in widths}
    out = str(tmp_path / "captions")
    with OpenAIServer(model="test-vlm", delay_s=0.4) as server:  # a slow model: one answer per 0.4 s
        args = ["caption", "--manifest", manifest, "--out", out, "--backend", "openai", "--quiet",
                "--set", f"openai.url={server.url}", "--set", "openai.model=test-vlm",
                "--set", "openai.batch_size=1", "--set", "rows_per_block=3", "--set", "rows_per_file=1"]
        kill_when(start_killable(args, ray_session.get_runtime_context().gcs_address), out, parts=3)
        before = set(captions_of(out)["image_id"].to_pylist())
        asked_before = dict(server.attempts)
        assert 3 <= len(before) < len(levels), "the run was not stopped half-way"
        assert len(part_files(out)) == len(before)  # one row per file: every file is whole, none half-written
        assert main(args) == 0
        assert f"{len(before)} already done; rows out 9 / rows in 9 (complete)" in capsys.readouterr().out
    rows = captions_of(out)
    assert sorted(rows["image_id"].to_pylist()) == sorted(levels)  # every image, none twice
    for row in rows.to_pylist():
        i = row["image_id"]
        if i not in widths:
            assert row["caption"] is None and "file not found" in row["error"]
            continue
        noun = "aesthetics of this image are" if row["task"] == "aesthetics" else "quality of this image is"
        assert row["caption"] == f"The {noun} {levels[i]}: test caption 40x24." and row["error"] is None
        asked_after = server.attempts[digests[i]] - asked_before.get(digests[i], 0)
        assert asked_after == (0 if i in before else 1), (i, asked_before.get(digests[i]), asked_after)
