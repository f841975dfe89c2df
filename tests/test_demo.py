"""The README's main command (`make demo` -> `uniqa demo`): the whole method end to end on the embedded sample. It
learns (zero-shot SRCC on held-out references up by >= 0.2 after pre-training, the adapter above zero-shot), the
report shows the same numbers, every stage leaves a complete ``_summary.json``, and a rerun skips what is done.

CI runs `make demo` first and passes the run folder in ``UNIQA_DEMO_RUN``; without it the fixture runs the demo."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uniqa import demo
from uniqa.stage import SUMMARY_FILE, StageSummary

PHASES = ("before", "after", "adapted")
# Each stage output folder of the demo and the stage that wrote it.
STAGE_FOLDERS = {
    "manifests/iqa": "prepare", "manifests/iaa": "prepare", "captions": "caption", "purified": "purify",
    "corpus": "corpus", "init": "init", "pretrain": "pretrain", "features/iqa": "features", "features/iaa": "features",
    "tune/quality": "tune", "tune/aesthetics": "tune",
    **{f"scores/{p}/{part}": "score" for p in PHASES for part in ("iqa", "iaa")},
    **{f"evaluation/{p}/{part}": "evaluate" for p in PHASES for part in ("iqa", "iaa")},
}


# ---------------------------------------------------------------- fast: the resume decision, metrics.json, init


def test_resume_decision():
    assert demo.decide(None, "k1", None) == "fresh"  # never run (or no state): start over
    assert demo.decide({"key": "k0", "done": "s"}, "k1", "s") == "fresh"  # config or an input changed
    assert demo.decide({"key": "k1", "done": None}, "k1", None) == "resume"  # interrupted: the stage resumes
    assert demo.decide({"key": "k1", "done": "s"}, "k1", None) == "resume"  # summary gone or now incomplete
    assert demo.decide({"key": "k1", "done": "s"}, "k1", "t") == "resume"  # summary rewritten by someone else
    assert demo.decide({"key": "k1", "done": "s"}, "k1", "s") == "skip"


def test_a_step_key_follows_its_config_and_its_inputs_not_the_folder_name():
    steps = {s.name: s for s in demo.plan("runs/a", 0, demo.DEMO_PRETRAIN)}
    state = {name: {"done": f"sha-{name}"} for name in steps}
    key = demo.step_key(steps["features/iqa"], state, "runs/a")
    moved = {s.name: s for s in demo.plan("/elsewhere/b", 0, demo.DEMO_PRETRAIN)}
    assert demo.step_key(moved["features/iqa"], state, "/elsewhere/b") == key
    assert demo.step_key(steps["features/iqa"], {**state, "pretrain": {"done": "new"}}, "runs/a") != key
    assert demo.step_key(steps["features/iqa"], {**state, "corpus": {"done": "new"}}, "runs/a") == key  # not read
    longer = {s.name: s for s in demo.plan("runs/a", 0, {**demo.DEMO_PRETRAIN, "steps": 10})}
    assert demo.step_key(longer["pretrain"], state, "runs/a") != demo.step_key(steps["pretrain"], state, "runs/a")


def test_the_plan_reads_only_earlier_steps_and_uses_the_pretrained_model_everywhere():
    steps = demo.plan("OUT", 0, demo.DEMO_PRETRAIN)
    names = [s.name for s in steps]
    for i, step in enumerate(steps):
        assert set(step.needs) <= set(names[:i]), step.name
    by = dict(zip(names, steps))
    assert by["corpus"].config["holdout"] == "split_0"
    assert by["pretrain"].config == demo.DEMO_PRETRAIN and by["pretrain"].config["num_workers"] == 2
    assert by["scores/before/iqa"].config["model"] == "OUT/init"
    for name in ("scores/after/iqa", "features/iqa", "features/iaa", "scores/adapted/iaa"):
        assert by[name].config["model"] == "OUT/pretrain/final", name
    for head, part in (("quality", "iqa"), ("aesthetics", "iaa")):
        sweep = by[f"tune/{head}"]
        assert sweep.config["base"] == {"model": "OUT/pretrain/final", "head": head, "epochs": 8}
        assert sweep.config["num_samples"] == 4 and sweep.calls[0]["features"] == f"OUT/features/{part}"
        assert sweep.config["max_concurrent"] == 1 and sweep.config["scheduler"]["kind"] == "asha"
    assert by["tune/aesthetics"].config["search_space"]["epochs"] == {"choice": [20, 40]}  # 32 training images
    assert by["tune/quality"].config["search_space"]["epochs"] == {"choice": [4, 8]}  # tuning/adapter-quality.yaml
    assert by["scores/adapted/iqa"].config["heads"] == ["quality=OUT/tune/quality/best",
                                                        "aesthetics=OUT/tune/aesthetics/best"]


def _row(dataset, head, srcc, split="split_0"):
    return {"dataset": dataset, "head": head, "split": split, "side": "test", "n": 90, "srcc": srcc,
            "plcc": srcc, "krcc": srcc, "excluded": 0, "missing": 0, "note": None}


def test_metrics_json_is_assembled_from_the_evaluation_summaries(tmp_path):
    figures = {"before": (0.05, -0.1), "after": (0.45, 0.2), "adapted": (0.8, 0.25)}
    for phase, (quality, aesthetics) in figures.items():
        for part, rows in (("iqa", [_row("kadid10k", "quality", quality), _row("kadid10k", "aesthetics", 0.3)]),
                           ("iaa", [_row("ava", "quality", 0.1), _row("ava", "aesthetics", aesthetics)])):
            StageSummary(stage="evaluate", inputs={}, output=str(tmp_path / "evaluation" / phase / part),
                         rows_in=2, rows_out=2, details={"table": rows}).write()
    steps = demo.plan(str(tmp_path), 0, demo.DEMO_PRETRAIN)
    metrics = demo.write_results(str(tmp_path), steps, {s.name: {} for s in steps}, 1.0)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["split"] == "split_0" and metrics["side"] == "test" and len(metrics["results"]) == 12
    assert metrics["results"][0] == {"phase": "before", "dataset": "kadid10k", "head": "quality", "n": 90,
                                     "srcc": 0.05, "plcc": 0.05, "krcc": 0.05}
    assert metrics["zero_shot_gain"] == pytest.approx({"kadid10k/quality": 0.40, "ava/aesthetics": 0.3})
    assert metrics["adapter_gain"] == pytest.approx({"kadid10k/quality": 0.35, "ava/aesthetics": 0.05})
    assert metrics["checks"] == {"zero_shot_gain_at_least_0.2": True, "adapter_above_zero_shot": True}
    undefined = demo.assemble_metrics({"before": [_row("kadid10k", "quality", 0.0), _row("ava", "aesthetics", 0.0)],
                                       "after": [_row("kadid10k", "quality", 0.3), _row("ava", "aesthetics", 0.3)],
                                       "adapted": [_row("kadid10k", "quality", 0.4), _row("ava", "aesthetics", None)]})
    assert undefined["adapter_gain"]["ava/aesthetics"] is None  # undefined SRCC: no gain, not a number
    assert undefined["checks"] == {"zero_shot_gain_at_least_0.2": True, "adapter_above_zero_shot": False}
    worse = demo.assemble_metrics({"before": [_row("kadid10k", "quality", 0.3)],
                                   "after": [_row("kadid10k", "quality", 0.45)],
                                   "adapted": [_row("kadid10k", "quality", 0.4), _row("x", "quality", 1, "split_1")]})
    assert worse["checks"] == {"zero_shot_gain_at_least_0.2": False, "adapter_above_zero_shot": False}
    assert len(worse["results"]) == 3  # only split_0's test side
    assert json.loads((tmp_path / "configs.json").read_text())["corpus"] == {"holdout": "split_0"}


def test_init_is_the_random_init_pretraining_starts_from(tmp_path):
    """OUT/init holds exactly the weights the training loop's build_model makes for the demo's config (and that
    `uniqa score --model uniqa-tiny` inits with seed 0), checked by checksum."""
    import hashlib

    import torch
    from safetensors.torch import save

    from uniqa.config import from_dict
    from uniqa.models import create_model, file_checksum
    from uniqa.training.config import PretrainConfig
    from uniqa.training.loop import Plan, build_model

    cfg = {"model": "uniqa-tiny", "seed": 0}
    summary = demo.build_init(str(tmp_path / "init"), cfg)
    assert summary.complete and summary.details["sha256"] == file_checksum(str(tmp_path / "init"))
    model = build_model(from_dict(PretrainConfig, demo.DEMO_PRETRAIN), Plan("x", "uniqa-tiny", None, 1, 1), "cpu")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    assert hashlib.sha256(save(state)).hexdigest() == summary.details["sha256"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # what the scorer does for a model without weights (uniqa.scoring.api.Scorer)
        scorer_init, _, _ = create_model("uniqa-tiny")
    assert all(torch.equal(v, state[k]) for k, v in scorer_init.state_dict().items())


# ---------------------------------------------------------------- the whole demo


def _run_demo(out: Path, timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "uniqa.cli", "demo", "--out", str(out)], capture_output=True,
                            text=True, timeout=timeout, cwd=Path(__file__).resolve().parents[1])
    return result, time.perf_counter() - start


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """(run folder, the first run's output or None when UNIQA_DEMO_RUN names a finished run, e.g. CI's)."""
    given = os.environ.get("UNIQA_DEMO_RUN")
    if given:
        assert (Path(given) / "metrics.json").is_file(), f"UNIQA_DEMO_RUN={given} holds no finished demo run"
        return Path(given), None
    out = tmp_path_factory.mktemp("demo") / "run"
    result, _ = _run_demo(out, timeout=1400)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out, result


def _report_numbers(html: str) -> dict[str, float]:
    found = re.findall(r'data-metric="([^"]+/srcc)"[^>]*>\s*([-+]?\d+\.\d{3})\s*<', html)
    return {key: float(value) for key, value in found}


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_demo_learns_and_the_report_says_so(demo_run):
    out, first = demo_run
    keys = set(StageSummary(stage="x", inputs={}, output="", rows_in=0, rows_out=0).to_dict())
    for folder, stage in STAGE_FOLDERS.items():  # the stage contract: one summary shape, each complete
        written = json.loads((out / folder / SUMMARY_FILE).read_text())
        assert set(written) == keys and written["stage"] == stage and written["complete"], folder
    assert (out / "pretrain" / "final" / "model.safetensors").is_file()
    assert json.loads((out / "configs.json").read_text())["corpus"]["holdout"] == "split_0"

    metrics = json.loads((out / "metrics.json").read_text())
    tables = {p: [row for part in ("iqa", "iaa") for row in json.loads(
        (out / "evaluation" / p / part / SUMMARY_FILE).read_text())["details"]["table"]] for p in PHASES}
    assert metrics == demo.assemble_metrics(tables)  # computed from the evaluation summaries, nothing else
    srcc = {(r["phase"], r["dataset"], r["head"]): r["srcc"] for r in metrics["results"]}
    assert {r["n"] for r in metrics["results"] if r["dataset"] == "kadid10k"} == {90}  # two held-out references
    assert metrics["zero_shot_gain"]["kadid10k/quality"] >= 0.2, metrics
    assert metrics["checks"]["zero_shot_gain_at_least_0.2"] is True
    assert metrics["checks"]["adapter_above_zero_shot"] == all(
        srcc[("adapted", *k.split("/"))] > srcc[("after", *k.split("/"))] for k in demo.CHECKED)

    shown = _report_numbers((out / "report.html").read_text())
    for (phase, dataset, head), value in srcc.items():
        if value is not None:
            key = f"{phase}/{dataset}/{head}/srcc"
            assert key in shown and abs(shown[key] - value) <= 0.0005 + 1e-9, (key, shown.get(key), value)

    if first is None:  # a run made elsewhere (CI's `make demo`): a rerun would find every step done
        steps = demo.plan(str(out), 0, demo.DEMO_PRETRAIN)
        state = json.loads((out / demo.STATE_FILE).read_text())
        decisions = {s.name: demo.decide(state.get(s.name), demo.step_key(s, state, str(out)),
                                         demo.summary_stamp(str(out), s)) for s in steps}
        assert set(decisions.values()) == {"skip"}, decisions
        return
    assert "[demo] report: " in first.stdout and first.stdout.count(" running ...") == len(STAGE_FOLDERS) + 1
    again, seconds = _run_demo(out, timeout=90)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    assert again.stdout.count("already done") == len(STAGE_FOLDERS) + 1 and "running ..." not in again.stdout
    assert seconds < 60, seconds
    assert json.loads((out / "metrics.json").read_text()) == metrics


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_the_adapter_beats_zero_shot_on_held_out_references(demo_run):
    out, _ = demo_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(metrics["adapter_gain"][k] > 0 for k in demo.CHECKED), metrics["adapter_gain"]
    assert metrics["checks"]["adapter_above_zero_shot"] is True
