"""Captioning without Ray: prompts, measures on the sample corpus, sentences, configs, chat helpers,
the never-raising HTTP session, and the vLLM processor config built from ours."""

from __future__ import annotations

import asyncio
import base64
import functools
import importlib.util
import io
import json
import os

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from uniqa.captioning import chat
from uniqa.captioning.attributes import caption_batch, caption_image, describe
from uniqa.captioning.backends import CAPTIONERS, LLMStep, MapStep, create_captioner
from uniqa.captioning.backends.vllm import VLLM_MODULES, VLLMCaptioner, check_vllm_installed, vllm_preprocess
from uniqa.captioning.caption_stage import processor_config
from uniqa.captioning.config import AttributesConfig, CaptionConfig, OpenAIConfig
from uniqa.captioning.http_session import SessionFactory
from uniqa.captioning.instructions import get_prompt, load_prompts, task_prompts
from uniqa.captioning.measures import measure
from uniqa.config import config_data, from_dict
from uniqa.data.images import load_image
from uniqa.errors import UniqaError
from uniqa.schema import LEVELS, TASKS

REFS = (1, 2, 3, 5, 7, 10)  # colour-photo tiles of the sample (textures and dark tiles measure as such)


def caption_config(overrides: list[str]) -> CaptionConfig:
    """The CaptionConfig that ``uniqa caption --set ...`` builds (defaults <- overrides)."""
    return from_dict(CaptionConfig, config_data(None, overrides))


def sample_image(root: str, ref: int, distortion: int | None = None, level: int = 0) -> np.ndarray:
    """Reference ``ref`` of the sample (level 0 or no distortion) or its distorted version."""
    name = f"I{ref:02d}.png" if distortion is None or level == 0 else f"I{ref:02d}_{distortion:02d}_{level:02d}.png"
    return load_image(os.path.join(root, "iqa", "images", name))


@functools.cache
def measured(root: str, ref: int, distortion: int, level: int) -> dict[str, float]:
    return measure(sample_image(root, ref, distortion, level))


# ------------------------------------------------------------------------------------------- prompts


def test_prompts_carry_the_level_word_and_a_version():
    for task in TASKS:
        p = get_prompt("v1", task)
        assert p.version == "v1" and p.task == task
        for level in LEVELS:
            assert f"rated {level}" in p.user_text(level)
            assert p.lead_text(level).endswith(level)
        assert "{level}" not in p.user_text(None) and p.system
    with pytest.raises(UniqaError, match="unknown prompt_version 'v9'.*known: \\['v1'\\]"):
        get_prompt("v9", "quality")
    with pytest.raises(UniqaError, match="level 'great'"):
        get_prompt("v1", "quality").user_text("great")


def test_custom_prompt_file_is_validated(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("v2:\n  quality: {system: s, user: 'rated {level}', user_unlabelled: u, lead: 'Q {level}', "
                    "lead_unlabelled: Q}\n")
    with pytest.raises(UniqaError, match="version 'v2' has no 'aesthetics' prompt"):
        load_prompts(str(path))
    with pytest.raises(UniqaError, match="prompt file not found: /nonexistent/p.yaml"):
        task_prompts("v1", TASKS, "/nonexistent/p.yaml")
    assert {t: p.version for t, p in task_prompts("v1", ("aesthetics",)).items()} == {"aesthetics": "v1"}


# ------------------------------------------------------------------------------------ measures


@pytest.mark.slow
def test_measures_move_monotonically_with_each_distortion(sample_corpus):
    """More severe -> strictly lower sharpness (Gaussian blur), higher noise, blockiness (JPEG), lower/higher
    brightness (under/over-exposure), lower contrast, lower colourfulness, higher pixelation, higher noise (impulse
    noise), lower contrast (chromatic aberration); motion blur: level 5 < level 1 < reference (its direction is
    random per level); quantisation: level 5 more colourful than the reference. Every one of the sample's
    distortions."""
    from uniqa.data.distortions import DISTORTIONS

    checks = {1: ("sharpness", -1), 3: ("noise", 1), 4: ("blockiness", 1), 5: ("brightness", -1),
              6: ("brightness", 1), 7: ("contrast", -1), 8: ("colourfulness", -1), 9: ("pixelation", 1),
              10: ("noise", 1), 12: ("contrast", -1)}
    for ref in REFS:
        for d, (key, sign) in checks.items():
            values = [measured(sample_corpus, ref, d, lv)[key] for lv in range(6)]
            assert np.all(np.diff(values) * sign > 0), (ref, d, key, values)
        assert measured(sample_corpus, ref, 9, 1)["pixelation"] > 0.45  # the mildest pixelation is named
        motion = [measured(sample_corpus, ref, 2, lv)["sharpness"] for lv in (5, 1, 0)]
        assert motion[0] < motion[1] < motion[2], motion
        banding = [measured(sample_corpus, ref, 11, lv)["colourfulness"] for lv in (0, 5)]  # quantisation
        assert banding[1] > banding[0] * 1.3, banding
    assert sorted([*checks, 2, 11]) == [d.id for d in DISTORTIONS]


def test_captions_name_the_distortion_and_the_level(sample_corpus):
    prompt = get_prompt("v1", "quality")
    expect = {(1, 3): "blurry", (2, 5): "blurry", (3, 3): "it is noisy", (4, 4): "strong JPEG blocking artefacts",
              (5, 5): "underexposed", (7, 5): "low contrast", (8, 5): "washed-out colours", (9, 1): "it is pixelated"}
    for ref in REFS:
        clean, _ = caption_image(sample_image(sample_corpus, ref), prompt, "perfect")
        assert clean.startswith("The quality of this image is perfect: it is ")
        assert "sharp" in clean and "blurry" not in clean and "artefacts" not in clean and "pixelated" not in clean
        for (d, lv), word in expect.items():
            level = LEVELS[ref % 5]
            caption, m = caption_image(sample_image(sample_corpus, ref, d, lv), prompt, level)
            assert word in caption and f" is {level}" in caption, (ref, d, lv, caption, m)


def test_sentence_rules_are_exact():
    good = {"sharpness": 30.0, "noise": 1.0, "brightness": 0.5, "dark_clip": 0.0, "bright_clip": 0.0,
            "contrast": 0.2, "colourfulness": 40.0, "blockiness": 1.0, "pixelation": 0.0}
    assert describe(good, "quality", "Q fair") == "Q fair: it is sharp, clean and well exposed."
    bad = {**good, "sharpness": 3.0, "noise": 4.0, "blockiness": 2.0, "colourfulness": 5.0}
    assert describe(bad, "quality", "Q bad") == (
        "Q bad: it is blurry and slightly noisy, with strong JPEG blocking artefacts and washed-out colours.")
    pixelated = {**good, "pixelation": 0.8, "sharpness": 3.0}  # pixelation wins the sharpness aspect
    assert describe(pixelated, "quality", "Q poor") == "Q poor: it is pixelated, clean and well exposed."
    aes = {"thirds": 0.9, "centred": 0.5, "balance": 0.8, "edge": 0.1, "brightness": 0.5, "contrast": 0.2,
           "saturation": 0.4, "harmony": 0.9, "colourfulness": 40.0, "isolation": 5.0, "sharpness": 30.0}
    assert describe(aes, "aesthetics", "A good") == (
        "A good, with the subject placed near a rule-of-thirds point, a sharp subject against a soft background "
        "and even lighting.")


def test_caption_batch_rows_and_errors(tmp_path):
    ok = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(ok)
    (tmp_path / "b.png").write_bytes(b"not an image")
    batch = {"image_id": np.array(["a", "b", "c"], object), "image_uri": np.array([str(ok), str(tmp_path / "b.png"),
                                                                                  str(ok)], object),
             "task": np.array(["quality", "quality", "aesthetics"], object),
             "level": np.array(["good", "bad", None], object)}
    t = caption_batch(batch).to_pylist()
    assert [r["image_id"] for r in t] == ["a", "b", "c"]
    assert t[0]["caption"].startswith("The quality of this image is good: ") and t[0]["error"] is None
    assert t[1]["caption"] is None and "b.png" in t[1]["error"] and t[1]["measures"] is None
    assert t[2]["caption"].startswith("This image, with ")  # unlabelled aesthetics row
    assert {r["backend"] for r in t} == {"attributes"} and {r["prompt_version"] for r in t} == {"v1"}
    assert set(dict(t[0]["measures"])) >= {"sharpness", "noise", "blockiness", "colourfulness", "harmony"}
    only_quality = caption_batch(batch, task_prompts("v1", ("quality",))).to_pylist()  # no prompt for aesthetics
    assert only_quality[0]["caption"] == t[0]["caption"]
    assert only_quality[2]["caption"] is None
    assert only_quality[2]["error"] == "task 'aesthetics' is not one of ['quality']"


# ------------------------------------------------------------------------------------- configs


def test_configs_fail_early_with_one_line():
    with pytest.raises(UniqaError, match="unknown captioner 'llava'; known: \\['attributes', 'openai', 'vllm'\\]"):
        create_captioner(caption_config(["backend=llava"]))
    with pytest.raises(UniqaError, match="^backend 'openai' needs openai.model"):
        create_captioner(caption_config(["backend=openai"])).check()
    with pytest.raises(UniqaError, match="prompt_version must be a non-empty string, got ''"):
        CaptionConfig(prompt_version="")
    with pytest.raises(UniqaError, match="openai.url must be an http"):
        caption_config(["openai.url=ftp://x"])
    with pytest.raises(UniqaError, match="tasks has \\['colour'\\]"):
        caption_config(["tasks=[colour]"])
    with pytest.raises(UniqaError, match="vllm.gpu_memory_utilization"):
        caption_config(["vllm.gpu_memory_utilization=1.5"])
    with pytest.raises(UniqaError, match="unknown config key 'vllm.max_len'"):
        caption_config(["vllm.max_len=4"])
    assert CAPTIONERS.names() == ["attributes", "openai", "vllm"]
    # __post_init__ reads no prompt file: an unknown version or a missing file fails in the run's pre-flight
    assert CaptionConfig(prompt_version="v9", prompts_file="/nonexistent/p.yaml").prompt_version == "v9"


def test_each_backend_owns_its_model_name_and_steps():
    """The model recorded on rows comes from the backend; steps are data that caption_stage applies."""
    from uniqa.captioning import chat
    from uniqa.captioning.attributes import caption_batch

    prompts = task_prompts()
    attributes = create_captioner(CaptionConfig(attributes=AttributesConfig(num_cpus=0.5)))
    assert (attributes.name, attributes.model) == ("attributes", "attributes-v2")
    [step] = attributes.steps(prompts)
    assert step.fn is caption_batch and step.num_cpus == 0.5 and step.kwargs["prompts"] == prompts
    openai = create_captioner(caption_config(["backend=openai", "openai.model=qwen-vl",
                                                                "openai.batch_size=4", "openai.qps=5"]))
    vllm = create_captioner(caption_config(["backend=vllm", "vllm.model_source=/w/qwen"]))
    assert (openai.model, vllm.model) == ("qwen-vl", "/w/qwen") and not hasattr(CaptionConfig, "model")
    encode, llm, finish = openai.steps(prompts)
    assert isinstance(encode, MapStep) and encode.fn is chat.encode_batch and encode.batch_size == 4
    assert isinstance(llm, LLMStep) and llm.config == "HttpRequestProcessorConfig"
    assert finish.fn is chat.caption_table and finish.kwargs == {"backend": "openai", "model": "qwen-vl",
                                                                 "version": "v1"}
    http = processor_config(llm)  # the real ray.data.llm config
    assert http.batch_size == 4 and http.qps == 5 and http.max_retries == 0
    assert http.session_factory.timeout_s == 120.0
    row = {"image_id": "x", "task": "quality", "level": "poor", "image_url": "data:,", "error": None}
    payload = llm.preprocess(row)
    assert payload["payload"]["model"] == "qwen-vl" and "rated poor" in str(payload["payload"]["messages"])
    assert [type(s).__name__ for s in vllm.steps(prompts)] == ["MapStep", "LLMStep", "MapStep"]


def test_config_module_imports_no_backend():
    """No import circle: the backends import the config, never the other way round."""
    import subprocess
    import sys

    code = ("import sys, uniqa.captioning.config, uniqa.captioning.instructions; "
            "print(sorted(m for m in sys.modules if m.startswith('uniqa.captioning.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "backends" not in loaded and "uniqa.captioning.config" in loaded


def test_vllm_processor_config_field_by_field():
    """The real ray.data.llm vLLMEngineProcessorConfig (constructible without vllm installed)."""
    from ray.data.llm import vLLMEngineProcessorConfig

    cfg = caption_config([
        "backend=vllm", "vllm.model_source=s3://models/qwen2.5-vl-7b", "vllm.max_model_len=8192",
        "vllm.limit_mm_per_prompt=2", "vllm.min_pixels=3136", "vllm.max_pixels=401408",
        "vllm.gpu_memory_utilization=0.8", "vllm.tensor_parallel_size=2", "vllm.batch_size=8",
        "vllm.concurrency=[1, 4]", "vllm.accelerator_type=A100", "vllm.max_concurrent_batches=4",
        "vllm.temperature=0.0", "vllm.top_p=1.0", "vllm.max_tokens=64", "vllm.dtype=bfloat16",
        "vllm.engine_kwargs={enforce_eager: true}",
    ])
    captioner = VLLMCaptioner(cfg)
    pc = processor_config(captioner.llm_step(task_prompts()))
    assert isinstance(pc, vLLMEngineProcessorConfig)
    assert pc.model_source == "s3://models/qwen2.5-vl-7b"
    assert pc.engine_kwargs == {
        "max_model_len": 8192, "limit_mm_per_prompt": {"image": 2},
        "mm_processor_kwargs": {"min_pixels": 3136, "max_pixels": 401408}, "gpu_memory_utilization": 0.8,
        "tensor_parallel_size": 2, "pipeline_parallel_size": 1, "dtype": "bfloat16", "trust_remote_code": False,
        "enable_prefix_caching": True, "enforce_eager": True, "task_type": "generate",
    }
    assert pc.batch_size == 8 and pc.concurrency == (1, 4) and pc.accelerator_type == "A100"
    assert pc.max_concurrent_batches == 4 and pc.should_continue_on_error is True
    assert pc.prepare_multimodal_stage == {"enabled": True, "model_config_kwargs": {"trust_remote_code": False}}
    assert pc.chat_template_stage is True and pc.tokenize_stage is True and pc.detokenize_stage is True
    assert captioner.model == "s3://models/qwen2.5-vl-7b"


def test_vllm_requests_carry_our_sampling_params_and_a_missing_extra_fails_in_one_line(tmp_path, capsys):
    cfg = caption_config(["backend=vllm", "vllm.temperature=0.7", "vllm.top_p=0.8",
                                            "vllm.max_tokens=77"])
    captioner = VLLMCaptioner(cfg)
    row = {"image_id": "x", "task": "quality", "level": "bad", "image_url": "data:image/jpeg;base64,AA", "error": None}
    request = captioner.llm_step(task_prompts()).preprocess(row)
    assert request["sampling_params"] == {"temperature": 0.7, "top_p": 0.8, "max_tokens": 77}
    assert "rated bad" in request["messages"][1]["content"][1]["text"]
    check_vllm_installed(find=lambda name: object())  # both modules present: passes
    with pytest.raises(UniqaError, match="^backend 'vllm' needs transformers \\(not installed\\): pip install"):
        check_vllm_installed(find=lambda name: None if name == "transformers" else object())
    if not all(importlib.util.find_spec(m) for m in VLLM_MODULES):  # this machine: the CLI says so before Ray
        from uniqa.cli import main

        out = tmp_path / "out"
        assert main(["caption", "--manifest", str(tmp_path), "--out", str(out), "--backend", "vllm"]) == 2
        assert "backend 'vllm' needs" in capsys.readouterr().err and not out.exists()


def test_vllm_preprocess_sends_openai_style_image_parts():
    sampling = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 64}
    row = {"image_id": "x", "task": "aesthetics", "level": "good", "image_url": "data:image/jpeg;base64,AAA",
           "error": None}
    out = vllm_preprocess(row, task_prompts(), sampling)
    assert out[chat.ERROR_KEY] == "" and out["sampling_params"] == sampling
    system, user = out["messages"]
    assert system["role"] == "system" and user["content"][0] == {
        "type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAA"}}
    assert "rated good" in user["content"][1]["text"] and "aesthetic" in user["content"][1]["text"]
    failed = vllm_preprocess({**row, "error": "x.jpg: file not found", "image_url": ""}, task_prompts(), sampling)
    assert failed[chat.ERROR_KEY] == "x.jpg: file not found"  # ray.data.llm passes it through untouched


# ---------------------------------------------------------------------------------------- chat


def test_data_url_fits_the_pixel_budget():
    image = np.random.default_rng(1).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    url = chat.data_url(image, max_pixels=30_000, quality=80)
    assert url.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.format == "JPEG" and decoded.size[0] * decoded.size[1] <= 30_000 and decoded.size == (200, 150)


def test_caption_table_normalises_success_and_pass_through_error_rows():
    batch = pa.table({"image_id": ["a", "b", "c"], "task": ["quality"] * 3, "caption": ["fine.", None, None],
                      "error": [None, "bad.png: truncated", None], chat.ERROR_KEY: ["", "bad.png: truncated",
                                                                                     "CUDA OOM"]})
    rows = chat.caption_table(batch, "vllm", "m", "v1").to_pylist()
    assert [(r["caption"], r["error"]) for r in rows] == [
        ("fine.", None), (None, "bad.png: truncated"), (None, "CUDA OOM")]
    only_errors = pa.table({"image_id": ["d"], "task": ["quality"], chat.ERROR_KEY: ["x" * 1000]})
    assert len(chat.caption_table(only_errors, "vllm", "m", "v1")["error"][0].as_py()) == chat.MAX_ERROR_CHARS


def test_parse_chat_response():
    ok = {"choices": [{"message": {"content": "  Sharp and\nclean. "}}]}
    assert chat.parse_chat_response(ok) == ("Sharp and clean.", None)
    assert chat.parse_chat_response({"uniqa_error": "HTTP 500: boom"}) == (None, "HTTP 500: boom")
    assert chat.parse_chat_response({"choices": None})[1].startswith("response has no choices")


# --------------------------------------------------------------------------------- HTTP session


def _payload(width: int, level: str = "fair") -> str:
    image = np.random.default_rng(width).integers(0, 255, (20, width, 3), dtype=np.uint8)
    messages = chat.chat_messages(get_prompt("v1", "quality"), level, chat.data_url(image))
    return json.dumps({"model": "test-vlm", "messages": messages})


def test_session_retries_then_answers_and_never_raises():
    from openai_server import WIDTH_500_ALWAYS, WIDTH_500_ONCE, WIDTH_OK, WIDTH_TIMEOUT_ALWAYS, OpenAIServer

    async def run(url):
        # 2 s per attempt: an answered request never comes near it, even on a busy machine (with 0.3 s one could time
        # out, be retried, and change the attempt counts below); the server's sleep (10 s) stays far past it
        factory = SessionFactory(timeout_s=2.0, max_retries=2, retry_wait_s=0.01)
        async with factory() as session:
            tasks = [session.post(url, headers={}, data=_payload(w))
                     for w in (WIDTH_OK, WIDTH_500_ONCE, WIDTH_500_ALWAYS, WIDTH_TIMEOUT_ALWAYS)]
            answers = []
            for t in tasks:
                async with await t as response:
                    assert response.status == 200
                    answers.append(await response.json())
        async with factory() as session:  # nothing listens on port 9: connection errors
            async with await session.post("http://127.0.0.1:9/v1", data="{}") as response:
                answers.append(await response.json())
        return answers

    with OpenAIServer(sleep_s=10.0) as server:
        answers = asyncio.run(run(server.url))
        assert server.violations == []
        assert sorted(server.attempts.values()) == [1, 2, 3, 3]  # ok, 500 once, 500 x3, timeout x3
    assert chat.parse_chat_response(answers[0])[0].startswith("The quality of this image is fair")
    assert chat.parse_chat_response(answers[1])[0].startswith("The quality of this image is fair")
    assert answers[2]["uniqa_error"] == "failed after 3 attempts: HTTP 500: Internal Server Error"
    assert answers[3]["uniqa_error"] == "failed after 3 attempts: timed out after 2 s"
    assert answers[4]["uniqa_error"].startswith("failed after 3 attempts: ClientConnectorError")


def test_cluster_vllm_config_file_loads():
    import argparse

    from uniqa.captioning.cli import COMMAND
    from uniqa.stagecli import add_arguments, resolve

    p = argparse.ArgumentParser()
    add_arguments(p, COMMAND)
    path = os.path.join(os.path.dirname(__file__), "..", "cluster", "caption-vllm.yaml")
    inputs, out, cfg = resolve(COMMAND, p.parse_args(["--config", path]))
    assert inputs == ["s3://BUCKET/manifests/ava"] and out == "s3://BUCKET/captions/ava"
    assert cfg.backend == "vllm" and cfg.vllm.concurrency == (1, 8) and cfg.vllm.accelerator_type == "H100"
    kwargs = processor_config(VLLMCaptioner(cfg).llm_step(task_prompts())).engine_kwargs
    assert kwargs["max_num_batched_tokens"] == 8192 and kwargs["mm_processor_kwargs"]["max_pixels"] == 1003520
    inputs, out, cfg = resolve(COMMAND, p.parse_args(["--config", path, "--manifest", "m", "--out", "o",
                                                      "--backend", "attributes", "--limit", "5"]))
    assert (inputs, out, cfg.backend, cfg.limit) == (["m"], "o", "attributes", 5)  # flags win over the file
    with pytest.raises(SystemExit):
        p.parse_args(["--no-progress"])  # gone: the common --quiet


def test_caption_inputs_fail_before_ray(tmp_path, capsys):
    from uniqa.cli import main
    from uniqa.schema import MANIFEST, SPLIT_COLUMNS
    from uniqa.tables import write_table

    assert main(["caption", "--manifest", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    row = {"image_id": "a", "image_uri": "/a.jpg", "dataset": "d", "task": "quality", "mos": 1.0, "mos_norm": 1.0,
           "level": "perfect", **{c: "train" for c in SPLIT_COLUMNS}}
    write_table(pa.Table.from_pylist([row]), str(tmp_path / "m1"), MANIFEST)
    write_table(pa.Table.from_pylist([row]), str(tmp_path / "m2"), MANIFEST)
    import shutil

    shutil.copy(tmp_path / "m2" / "part-00000.parquet", tmp_path / "m1" / "part-00001.parquet")
    assert main(["caption", "--manifest", str(tmp_path / "m1"), "--out", str(tmp_path / "o")]) == 2
    assert "(captions are keyed by image_id): column 'image_id' has duplicate value 'a'" in capsys.readouterr().err
    assert main(["caption", "--manifest", str(tmp_path / "m2"), "--out", str(tmp_path / "o"),
                 "--set", "prompt_version=v9"]) == 2
    assert "error: unknown prompt_version 'v9'" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["caption", "--manifest", str(tmp_path / "m2"), "--out", str(tmp_path / "file")]) == 2
    assert "is a file; captions are written as a folder" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written by a failed pre-flight
    assert main(["caption", "--manifest", str(tmp_path / "m2"), "--out", str(tmp_path / "o"),
                 "--set", "openai.timeout_s=-1"]) == 2
    assert "openai.timeout_s must be a positive number, got -1" in capsys.readouterr().err


def test_pipeline_entry_points_share_the_cli_checks(tmp_path, capsys):
    import importlib.util

    root = os.path.join(os.path.dirname(__file__), "..", "pipelines")
    for name, extra in (("caption", ["--backend", "nope"]), ("purify", ["--captions", str(tmp_path)])):
        spec = importlib.util.spec_from_file_location(f"pipeline_{name}", os.path.join(root, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.main(["--manifest", str(tmp_path / "m"), "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err
    assert "unknown captioner 'nope'" in err and "no such file or directory" in err


def test_worker_user_errors_surface_as_one_line(tmp_path):
    from uniqa.executor import check_identity as check_run_identity
    from uniqa.runtime import user_error_in, user_errors
    from uniqa.tables import remove_parts

    class ActorDied(RuntimeError):
        pass

    text = "The actor died ...\nTraceback ...\nuniqa.errors.UniqaError: no such checkpoint: /w.pt\n"
    assert user_error_in(ActorDied(text)) == "no such checkpoint: /w.pt"
    wrapped = RuntimeError("task failed")
    wrapped.cause = UniqaError("bad level 'x'\nmore")
    assert user_error_in(wrapped) == "bad level 'x'"
    assert user_error_in(RuntimeError("plain bug")) is None

    def boom():
        raise ActorDied(text)

    with pytest.raises(UniqaError, match="^no such checkpoint: /w.pt$"), user_errors():
        boom()
    with pytest.raises(RuntimeError, match="plain bug"), user_errors():
        raise RuntimeError("plain bug")
    check_run_identity(str(tmp_path), {"backend": "attributes"})
    check_run_identity(str(tmp_path), {"backend": "attributes"})
    with pytest.raises(UniqaError, match="backend='attributes', this run has backend='vllm'"):
        check_run_identity(str(tmp_path), {"backend": "vllm"})
    (tmp_path / "part-1.parquet").write_bytes(b"")
    (tmp_path / "_tmp-2.parquet").write_bytes(b"")
    assert remove_parts(str(tmp_path)) == 2 and sorted(os.listdir(tmp_path)) == ["_run.json"]


def test_a_rerun_forgets_only_the_rows_whose_requests_gave_up(tmp_path):
    """Rows whose server was unreachable are captioned again on rerun; broken images and refusals stay done."""
    from uniqa import sink
    from uniqa.captioning.backends.openai import forget_gave_up
    from uniqa.captioning.http_session import GAVE_UP, gave_up
    from uniqa.schema import CAPTIONS

    def rows(ids, errors):
        return pa.table({"image_id": ids, "task": ["quality"] * len(ids),
                         "caption": [None if e else f"text {i}" for i, e in zip(ids, errors)],
                         "backend": ["openai"] * len(ids), "model": ["m"] * len(ids),
                         "prompt_version": ["v1"] * len(ids), "error": errors})

    out = str(tmp_path / "captions")
    sink.write_batch(rows(["a", "b", "c"], [None, f"{GAVE_UP}3 attempts: connection refused", "cannot decode"]),
                     out, CAPTIONS)
    sink.write_batch(rows(["d"], [None]), out, CAPTIONS)
    untouched = set(sink.part_names(out))
    assert forget_gave_up(out) == 1
    assert sink.output_state(out).id_set() == {"a", "c", "d"}
    assert len(set(sink.part_names(out)) & untouched) == 1  # the file without such rows is not rewritten
    assert forget_gave_up(out) == 0
    assert gave_up(f"{GAVE_UP}2 attempts") and not gave_up("cannot decode") and not gave_up(None)


def test_waiting_for_a_server_that_never_answers_is_bounded():
    from uniqa.captioning.http_session import models_url, wait_for_model

    assert models_url("http://127.0.0.1:8000/v1/chat/completions") == "http://127.0.0.1:8000/v1/models"
    now = [0.0]
    waits = []

    def sleep(s):
        waits.append(s)
        now[0] += s

    with pytest.raises(UniqaError, match=r"did not answer within openai.wait_s=3 s"):
        wait_for_model("http://127.0.0.1:9/v1/chat/completions", "m", 3.0, poll_s=1.0, clock=lambda: now[0],
                       sleep=sleep)
    assert sum(waits) == pytest.approx(3.0) and len(waits) == 3


def test_block_rows_by_backend():
    """rows_per_block unset: attributes (CPU, ~3 ms a row) gives each CPU slot two blocks within 64-1,024 rows;
    an LLM backend keeps 64-row blocks (the unit of parallel requests); a value given is used as given."""
    attributes = create_captioner(CaptionConfig(backend="attributes"))
    assert attributes.block_rows(10_000, cpus=2.0) == 1024
    assert attributes.block_rows(1_000, cpus=2.0) == 250
    assert attributes.block_rows(1_000, cpus=64.0) == 64
    assert attributes.block_rows(None, cpus=2.0) == 64
    half = create_captioner(CaptionConfig(backend="attributes", attributes=AttributesConfig(num_cpus=0.5)))
    assert half.block_rows(1_000, cpus=2.0) == 125  # 4 slots
    openai = create_captioner(CaptionConfig(backend="openai", openai=OpenAIConfig(model="m")))
    assert openai.block_rows(1_000_000, cpus=2.0) == 64
    assert CaptionConfig(rows_per_block=7).rows_per_block == 7
    with pytest.raises(UniqaError, match="rows_per_block must be a positive number, got 0"):
        CaptionConfig(rows_per_block=0)
