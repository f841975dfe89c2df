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

from uniqa.cli import main
from uniqa.demo import results as demo
from uniqa.demo.recipe import load_recipe
from uniqa.demo.steps import STATE_FILE, decide, step_key, summary_stamp
from uniqa.errors import UniqaError
from uniqa.stage import SUMMARY_FILE, StageSummary

PHASES = ("before", "after", "adapted")
SCORED = ("classic", *PHASES)  # the classic metrics' baselines are scored and evaluated like a phase
# Each stage output folder of the demo and the stage that wrote it.
STAGE_FOLDERS = {
    "sample": "sample", "manifests/iqa": "prepare", "manifests/iaa": "prepare", "captions": "caption",
    "purified": "purify",
    "manifests/iqa-test": "prepare", "manifests/iaa-test": "prepare",
    "corpus": "corpus", "init": "init", "pretrain": "pretrain", "features/iqa": "features", "features/iaa": "features",
    "tune/quality": "tune", "tune/aesthetics": "tune",
    **{f"scores/{p}/{part}": "score" for p in SCORED for part in ("iqa", "iaa")},
    **{f"evaluation/{p}/{part}": "evaluate" for p in SCORED for part in ("iqa", "iaa")},
}


# ---------------------------------------------------------------- fast: the resume decision, metrics.json, init


def test_resume_decision():
    assert decide(None, "k1", None) == "fresh"  # never run (or no state): start over
    assert decide({"key": "k0", "done": "s"}, "k1", "s") == "fresh"  # config or an input changed
    assert decide({"key": "k1", "done": None}, "k1", None) == "resume"  # interrupted: the stage resumes
    assert decide({"key": "k1", "done": "s"}, "k1", None) == "resume"  # summary gone or now incomplete
    assert decide({"key": "k1", "done": "s"}, "k1", "t") == "resume"  # summary rewritten by someone else
    assert decide({"key": "k1", "done": "s"}, "k1", "s") == "skip"


def test_a_step_key_follows_its_config_and_the_steps_it_reads(tmp_path):
    recipe = load_recipe()
    state = {s.name: {"done": f"sha-{s.name}"} for s in recipe.steps}
    key = step_key(recipe.step("features/iqa"), state)
    assert step_key(recipe.step("features/iqa"), {**state, "pretrain": {"done": "new"}}) != key
    assert step_key(recipe.step("features/iqa"), {**state, "corpus": {"done": "new"}}) == key  # not read
    edited = tmp_path / "recipe.yaml"  # the same file, edited by hand: 300 pre-training steps
    edited.write_text(Path(recipe.source).read_text().replace("steps: 600,", "steps: 300,"))
    shorter = load_recipe(str(edited))
    assert shorter.step("pretrain").config["steps"] == 300
    assert step_key(shorter.step("pretrain"), state) != step_key(recipe.step("pretrain"), state)
    assert step_key(shorter.step("features/iqa"), state) == key  # until pre-training's result changes


def test_the_recipe_reads_only_earlier_steps_and_uses_the_pretrained_model_everywhere():
    recipe = load_recipe()
    names = [s.name for s in recipe.steps]
    for i, step in enumerate(recipe.steps):
        assert set(step.needs) <= set(names[:i]), step.name
    assert demo.has_results(names) and recipe.ray_cpus == 2
    by = {s.name: s.config_at("OUT") for s in recipe.steps}
    assert by["corpus"]["holdout"] == "split_0"
    assert by["pretrain"]["steps"] == 600 and by["pretrain"]["num_workers"] == 2
    assert by["scores/before/iqa"]["model"] == "OUT/init" and recipe.step("scores/before/iqa").needs == (
        "init", "manifests/iqa-test")
    for name in ("scores/after/iqa", "features/iqa", "features/iaa", "scores/adapted/iaa"):
        assert by[name]["model"] == "OUT/pretrain/final", name
    for head, part in (("quality", "iqa"), ("aesthetics", "iaa")):
        sweep = by[f"tune/{head}"]
        assert sweep["base"] == {"model": "OUT/pretrain/final", "head": head, "epochs": 8}
        assert sweep["num_samples"] == 4
        assert recipe.step(f"tune/{head}").calls_at("OUT")[0]["features"] == f"OUT/features/{part}"
        assert sweep["max_concurrent"] == 1 and sweep["scheduler"]["kind"] == "asha"
    assert by["tune/aesthetics"]["search_space"]["epochs"] == {"choice": [20, 40]}  # 32 training images
    assert by["tune/quality"]["search_space"]["epochs"] == {"choice": [4, 8]}  # tuning/adapter-quality.yaml
    adapted = ["quality=OUT/tune/quality/best", "aesthetics=OUT/tune/aesthetics/best"]
    assert by["scores/adapted/iqa"]["heads"] == adapted
    assert set(recipe.step("scores/adapted/iqa").needs) == {"pretrain", "tune/quality", "tune/aesthetics",
                                                            "manifests/iqa-test"}
    assert by["scores/classic/iqa"]["heads"] == ["niqe", "brisque"]  # no model: the classic baselines
    assert "model" not in by["scores/classic/iqa"] and recipe.step("scores/classic/iqa").needs == (
        "manifests/iqa-test",)


@pytest.mark.parametrize("edit, message", [
    ("stage: corpus", "unknown stage 'nothing'"),
    ("holdout: split_0", "recipe step 'corpus': unknown config key 'holdot'"),
    ('captions: ["{out}/captions"]', "recipe step 'corpus' reads {out}/captionz, which no earlier step writes"),
    ("{name: init, stage: init,", "recipe step 'init': stage init takes the inputs none"),
])
def test_a_bad_recipe_fails_before_anything_runs(tmp_path, edit, message, capsys):
    text = load_recipe().source
    text = Path(text).read_text()
    bad = {"stage: corpus": "stage: nothing", "holdout: split_0": "holdot: split_0",
           'captions: ["{out}/captions"]': 'captions: ["{out}/captionz"]',
           "{name: init, stage: init,": "{name: init, stage: init, calls: [{corpus: x}],"}[edit]
    assert edit in text
    (tmp_path / "bad.yaml").write_text(text.replace(edit, bad, 1))
    with pytest.raises(UniqaError, match=re.escape(message)):
        load_recipe(str(tmp_path / "bad.yaml"))
    assert main(["demo", "--recipe", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_an_edited_recipe_runs_resumes_and_reruns_what_an_edit_changes(sample_corpus, tmp_path, capsys):
    """A hand-written recipe of local stages: the first run runs each step, a rerun finds each done, and an edit
    reruns the edited step and the steps that read it, nothing else."""
    recipe = tmp_path / "recipe.yaml"

    def write(train_fraction: float, seed: int) -> None:
        recipe.write_text(f"""steps:
  - {{name: manifests/iqa, stage: prepare, config: {{train_fraction: {train_fraction}}},
     calls: [{{name: kadid10k, root: "{sample_corpus}/iqa"}}]}}
  - {{name: manifests/iqa-test, stage: prepare,
     calls: [{{name: manifest, root: "{{out}}/manifests/iqa", option: [split=split_0, side=test]}}]}}
  - {{name: init, stage: init, config: {{model: uniqa-tiny, seed: {seed}}}}}
""")

    def demo_run() -> dict[str, str]:
        assert main(["demo", "--recipe", str(recipe), "--out", str(tmp_path / "run")]) == 0
        lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[demo]  ")]
        return {line.split()[2].rstrip(":"): line.split(": ", 1)[1] for line in lines if " done in " not in line}

    write(0.8, 0)
    assert demo_run() == {"manifests/iqa": "running ...", "manifests/iqa-test": "running ...", "init": "running ..."}
    test_side = (tmp_path / "run" / "manifests" / "iqa-test" / SUMMARY_FILE).read_text()
    assert json.loads(test_side)["rows_out"] == 480
    assert set(demo_run().values()) == {"already done"}
    write(0.6, 0)  # more references on the test side: the test-side manifest is made again
    assert demo_run() == {"manifests/iqa": "running ...", "manifests/iqa-test": "running ...",
                          "init": "already done"}
    assert json.loads((tmp_path / "run" / "manifests" / "iqa-test" / SUMMARY_FILE).read_text())["rows_out"] > 480
    write(0.6, 1)
    assert demo_run() == {"manifests/iqa": "already done", "manifests/iqa-test": "already done",
                          "init": "running ..."}
    state = json.loads((tmp_path / "run" / STATE_FILE).read_text())
    assert set(state) == {"manifests/iqa", "manifests/iqa-test", "init"} and all(e["done"] for e in state.values())


def _row(dataset, head, srcc, split="split_0"):
    return {"dataset": dataset, "head": head, "split": split, "side": "test", "n": 90, "groups": 2, "srcc": srcc,
            "plcc": srcc, "krcc": srcc, "srcc_lo": srcc - 0.1, "srcc_hi": srcc + 0.1, "plcc_lo": srcc - 0.2,
            "plcc_hi": srcc + 0.2, "excluded": 0, "missing": 0, "note": None}


def _write_part(root, part, dataset, task, refs, per, noise):
    """OUT/manifests/<part> (``refs`` references of ``per`` images, the first half on split_0's test side) and
    OUT/scores/<phase>/<part> (the head's score: mos_norm plus the phase's noise); returns the test rows' ids."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    mos = np.random.default_rng(99).uniform(0.05, 0.95, refs * per)
    ids = [f"{dataset}/{r}_{k}.png" for r in range(refs) for k in range(per)]
    side = ["test" if r < refs // 2 else "train" for r in range(refs) for _ in range(per)]
    (root / "manifests" / part).mkdir(parents=True)
    pq.write_table(pa.table({"image_id": ids, "dataset": [dataset] * len(ids), "task": [task] * len(ids),
                             "mos_norm": mos, "group": [f"ref{r}" for r in range(refs) for _ in range(per)],
                             "split_0": side}), root / "manifests" / part / "part-00000.parquet")
    head = "quality" if task == "quality" else "aesthetics"
    for seed, (phase, sd) in enumerate(noise.items()):
        values = mos + np.random.default_rng(seed).normal(0, sd, len(ids))
        error = [None] * len(ids)
        error[0] = "ImageError: truncated" if phase == "adapted" else None  # left out of both of its gains
        (root / "scores" / phase / part).mkdir(parents=True)
        columns = {head: values} if phase != "classic" else {  # brisque at the phase's noise, niqe at twice it
            "niqe": mos + np.random.default_rng(50).normal(0, 2 * sd, len(ids)), "brisque": values}
        pq.write_table(pa.table({"image_id": ids, **columns, "error": pa.array(error, pa.string())}),
                       root / "scores" / phase / part / "part-00000.parquet")
    return [i for i, s in zip(ids, side) if s == "test"]


def test_metrics_json_is_assembled_from_the_evaluation_summaries_and_the_scores(tmp_path):
    figures = {"before": (0.05, -0.1), "after": (0.45, 0.2), "adapted": (0.8, 0.25)}
    for phase, (quality, aesthetics) in figures.items():
        for part, rows in (("iqa", [_row("kadid10k", "quality", quality), _row("kadid10k", "aesthetics", 0.3)]),
                           ("iaa", [_row("ava", "quality", 0.1), _row("ava", "aesthetics", aesthetics)])):
            StageSummary(stage="evaluate", inputs={}, output=str(tmp_path / "evaluation" / phase / part),
                         rows_in=2, rows_out=2, details={"table": rows}).write()
    for part, dataset in (("iqa", "kadid10k"), ("iaa", "ava")):
        rows = [_row(dataset, "niqe", 0.3), _row(dataset, "brisque", 0.5)]
        StageSummary(stage="evaluate", inputs={}, output=str(tmp_path / "evaluation" / "classic" / part), rows_in=2,
                     rows_out=2, details={"table": rows}).write()
    noise = {"classic": 0.6, "before": 2.0, "after": 0.3, "adapted": 0.05}
    _write_part(tmp_path, "iqa", "kadid10k", "quality", refs=8, per=15, noise=noise)
    _write_part(tmp_path, "iaa", "ava", "aesthetics", refs=200, per=1, noise=noise)
    steps = list(load_recipe().steps)
    metrics = demo.write_results(str(tmp_path), steps, {s.name: {} for s in steps}, 1.0)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["split"] == "split_0" and metrics["side"] == "test" and len(metrics["results"]) == 16
    assert [r["head"] for r in metrics["results"] if r["phase"] == "classic"] == ["niqe", "brisque"] * 2
    assert metrics["results"][4] == {"phase": "before", "dataset": "kadid10k", "head": "quality", "n": 90,
                                     "groups": 2, "srcc": 0.05, "srcc_ci": pytest.approx([-0.05, 0.15]),
                                     "plcc": 0.05, "plcc_ci": pytest.approx([-0.15, 0.25]), "krcc": 0.05}
    assert metrics["bootstrap"] | {"gains": None} == {"resamples": 1000, "seed": 0, "level": 0.95, "gains": None,
                                                      "unit": {"kadid10k": "group", "ava": "image"}}
    for name in ("zero_shot_gain", "adapter_gain"):
        assert set(metrics[name]) == {"kadid10k/quality", "ava/aesthetics"}
    zero_shot, adapter = metrics["zero_shot_gain"]["kadid10k/quality"], metrics["adapter_gain"]["ava/aesthetics"]
    assert (zero_shot["n"], zero_shot["groups"]) == (60, 4) and (adapter["n"], adapter["groups"]) == (99, 99)
    assert 0 < zero_shot["ci"][0] < zero_shot["point"] < zero_shot["ci"][1] and zero_shot["point"] > 0.2
    assert 0 < adapter["ci"][0] < adapter["point"] < adapter["ci"][1]
    for check in metrics["checks"].values():
        assert check["passed"] is True and set(check["per"]) == set(demo.CHECKED) and check["rule"]
        assert all(e["passed"] for e in check["per"].values())
    classic = metrics[demo.CLASSIC_GAIN]["kadid10k/quality"]  # adapted (noise 0.05) over brisque (0.6; niqe 1.2)
    assert classic["baseline"] == "classic/brisque" and 0 < classic["ci"][0] < classic["point"]
    assert metrics["checks"]["adapted_above_best_classic"]["on"] == ["kadid10k/quality"]
    per = metrics["checks"]["zero_shot_gain_at_least_0.2"]["per"]["kadid10k/quality"]
    assert per == {"point": zero_shot["point"], "ci": zero_shot["ci"], "passed": True}
    worse = demo.assemble_metrics({"before": [_row("kadid10k", "quality", 0.3)],
                                   "after": [_row("kadid10k", "quality", 0.45)],
                                   "adapted": [_row("kadid10k", "quality", 0.4), _row("x", "quality", 1, "split_1")]},
                                  [])
    assert len(worse["results"]) == 3  # only split_0's test side
    assert not any(c["passed"] for c in worse["checks"].values())  # no gains: nothing checked passes
    assert json.loads((tmp_path / "configs.json").read_text())["corpus"] == {"holdout": "split_0"}


def _two_references(seed: int = 1):
    """Reference A improves from chance to perfect, reference B gets a little worse: the pooled gain is large, but
    a resample of B alone (about a quarter of them) shows a loss."""
    import numpy as np

    from uniqa.evaluation.paired import PartScores

    rng = np.random.default_rng(seed)
    mos, units = np.tile(np.linspace(0, 1, 15), 2), np.array(["A"] * 15 + ["B"] * 15)
    before = np.where(units == "A", rng.random(30), mos + rng.normal(0, 0.1, 30))
    after = np.where(units == "A", mos, mos + rng.normal(0, 0.4, 30))
    return PartScores("kadid10k", "quality", "group", mos, units, {"before": before, "after": after, "adapted": after})


def test_checks_are_decided_on_the_paired_intervals_not_the_points():
    import numpy as np

    from uniqa.evaluation.config import BootstrapConfig
    from uniqa.evaluation.paired import PartScores

    mos = np.linspace(0, 1, 40)
    rng = np.random.default_rng(0)
    clear = PartScores("ava", "aesthetics", "image", mos, np.array([f"i{k}" for k in range(40)]),
                       {"before": rng.random(40), "after": mos + rng.normal(0, 0.1, 40),
                        "adapted": mos + rng.normal(0, 0.02, 40)})
    metrics = demo.assemble_metrics({}, [_two_references(), clear])
    gain = metrics["zero_shot_gain"]["kadid10k/quality"]
    assert gain["point"] >= 0.2 and gain["ci"][0] <= 0 and (gain["n"], gain["groups"]) == (30, 2)
    zero_shot = metrics["checks"]["zero_shot_gain_at_least_0.2"]
    assert zero_shot["per"]["kadid10k/quality"]["passed"] is False  # the point alone would pass
    assert zero_shot["per"]["ava/aesthetics"]["passed"] is True and zero_shot["passed"] is False
    adapter = metrics["checks"]["adapter_above_zero_shot"]
    assert metrics["adapter_gain"]["kadid10k/quality"] == {"point": 0.0, "ci": [0.0, 0.0], "n": 30, "groups": 2,
                                                           "dropped": 0}
    assert adapter["per"]["kadid10k/quality"]["passed"] is False and adapter["per"]["ava/aesthetics"]["passed"]
    again = demo.assemble_metrics({}, [_two_references(), clear])
    assert again == metrics  # seeded: the same intervals to the last digit
    other = demo.assemble_metrics({}, [_two_references(), clear], BootstrapConfig(seed=7))
    assert other["zero_shot_gain"]["ava/aesthetics"]["ci"] != metrics["zero_shot_gain"]["ava/aesthetics"]["ci"]
    missing = PartScores("ava", "aesthetics", "image", mos, clear.units, {"before": clear.scores["before"]})
    undefined = demo.assemble_metrics({}, [_two_references(), missing])
    assert undefined["zero_shot_gain"]["ava/aesthetics"]["point"] is None  # a phase without scores: no gain
    assert undefined["checks"]["adapter_above_zero_shot"]["per"]["ava/aesthetics"]["passed"] is False


def test_printed_metrics_show_intervals_and_decisions(capsys):
    metrics = demo.assemble_metrics({p: [_row("kadid10k", "quality", s)] for p, s in
                                     (("before", 0.1), ("after", 0.412), ("adapted", 0.5))}, [_two_references()])
    demo.print_metrics(metrics)
    out = capsys.readouterr().out
    assert "+0.412 [+0.31, +0.51]" in out and "95% bootstrap intervals (1000 resamples of kadid10k: groups)" in out
    gain = metrics["zero_shot_gain"]["kadid10k/quality"]
    assert f"{gain['point']:+.3f} [{gain['ci'][0]:+.2f}, {gain['ci'][1]:+.2f}]" in out
    assert "check zero_shot_gain_at_least_0.2" in out and ": NO (kadid10k/quality no)" in out


def test_init_is_the_random_init_pretraining_starts_from(tmp_path):
    """`uniqa init` (the demo's OUT/init) writes exactly the weights the training loop's build_model makes for
    the demo's pre-training config (and that `uniqa score --model uniqa-tiny` inits with seed 0), checked by
    checksum."""
    import hashlib

    import torch
    from safetensors.torch import save

    from uniqa.config import from_dict
    from uniqa.models import create_model, file_checksum
    from uniqa.training.config import PretrainConfig
    from uniqa.training.loop import Plan, build_model

    assert main(["init", "--model", "uniqa-tiny", "--seed", "0", "--out", str(tmp_path / "init")]) == 0
    summary = json.loads((tmp_path / "init" / SUMMARY_FILE).read_text())
    assert summary["complete"] and summary["details"]["sha256"] == file_checksum(str(tmp_path / "init"))
    summary = StageSummary(**{k: summary[k] for k in ("stage", "inputs", "output", "rows_in", "rows_out",
                                                      "details")})
    pretrain = from_dict(PretrainConfig, load_recipe().step("pretrain").config_at("OUT"))
    model = build_model(pretrain, Plan("x", "uniqa-tiny", None, 1, 1), "cpu")
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
    result, _ = _run_demo(out, timeout=2700)  # ~10 min idle; a busy machine may take 2-3x
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return out, result


def _report_numbers(html: str, names: str = "srcc") -> dict[str, float]:
    found = re.findall(rf'data-metric="([^"]+/(?:{names}))"[^>]*>\s*([-+]?\d+\.\d{{3}})\s*<', html)
    return {key: float(value) for key, value in found}


@pytest.mark.slow
@pytest.mark.timeout(3000)
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
        (out / "evaluation" / p / part / SUMMARY_FILE).read_text())["details"]["table"]] for p in SCORED}
    # computed from the evaluation summaries and the scores of split_0's test rows, nothing else
    assert metrics == demo.assemble_metrics(tables, demo.read_parts(str(out)))
    srcc = {(r["phase"], r["dataset"], r["head"]): r["srcc"] for r in metrics["results"]}
    assert {(r["n"], r["groups"]) for r in metrics["results"] if r["dataset"] == "kadid10k"} == {(480, 8)}  # 8 refs
    assert {(r["n"], r["groups"]) for r in metrics["results"] if r["dataset"] == "ava"} == {(64, 64)}
    assert all(r["srcc_ci"] is not None and r["srcc_ci"][0] <= r["srcc_ci"][1] for r in metrics["results"]
               if r["srcc"] is not None), metrics["results"]
    assert metrics["zero_shot_gain"]["kadid10k/quality"]["point"] >= 0.2, metrics
    zero_shot = metrics["checks"]["zero_shot_gain_at_least_0.2"]
    assert zero_shot["per"]["kadid10k/quality"]["passed"] is True, zero_shot  # on its paired interval
    assert zero_shot["passed"] == all(zero_shot["per"][k]["passed"] for k in demo.CHECKED)
    assert metrics["checks"]["adapter_above_zero_shot"]["passed"] == all(  # decided on the paired interval
        metrics["adapter_gain"][k]["ci"] is not None and metrics["adapter_gain"][k]["ci"][0] > 0 for k in demo.CHECKED)

    shown = _report_numbers((out / "report" / "report.html").read_text())
    for (phase, dataset, head), value in srcc.items():
        if value is not None:
            key = f"{phase}/{dataset}/{head}/srcc"
            assert key in shown and abs(shown[key] - value) <= 0.0005 + 1e-9, (key, shown.get(key), value)
    ends = _report_numbers((out / "report" / "report.html").read_text(), "srcc_lo|srcc_hi")
    for r in metrics["results"]:
        for key, value in zip(("srcc_lo", "srcc_hi"), r["srcc_ci"] or []):
            key = f"{r['phase']}/{r['dataset']}/{r['head']}/{key}"
            assert abs(ends[key] - value) <= 0.0005 + 1e-9, (key, ends.get(key), value)

    if first is None:  # a run made elsewhere (CI's `make demo`): a rerun would find every step done
        state = json.loads((out / STATE_FILE).read_text())
        decisions = {s.name: decide(state.get(s.name), step_key(s, state), summary_stamp(str(out), s))
                     for s in load_recipe().steps}
        assert set(decisions.values()) == {"skip"}, decisions
        return
    assert "[demo] report: " in first.stdout and first.stdout.count(" running ...") == len(STAGE_FOLDERS)
    again, seconds = _run_demo(out, timeout=600)  # a few seconds idle; generous for a busy machine
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    # nothing ran again: every step skipped (no time bound: a busy machine may take longer to find that out)
    assert again.stdout.count("already done") == len(STAGE_FOLDERS) and "running ..." not in again.stdout
    assert json.loads((out / "metrics.json").read_text()) == metrics


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_the_adapter_beats_zero_shot_on_held_out_references(demo_run):
    out, _ = demo_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(metrics["adapter_gain"][k]["ci"][0] > 0 for k in demo.CHECKED), metrics["adapter_gain"]
    assert metrics["checks"]["adapter_above_zero_shot"]["passed"] is True


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_the_adapted_model_beats_the_classic_metrics_on_held_out_references(demo_run):
    out, _ = demo_run
    metrics = json.loads((out / "metrics.json").read_text())
    classic = {r["head"]: r["srcc"] for r in metrics["results"] if r["phase"] == "classic"
               and r["dataset"] == "kadid10k"}
    assert set(classic) == {"niqe", "brisque"} and all(v is not None for v in classic.values())
    gain = metrics[demo.CLASSIC_GAIN]["kadid10k/quality"]
    assert gain["baseline"] == f"classic/{max(classic, key=classic.get)}"  # the best classic metric on these rows
    assert gain["ci"][0] > 0, gain  # with confidence: the paired interval
    assert metrics["checks"]["adapted_above_best_classic"]["passed"] is True


@pytest.mark.slow
@pytest.mark.timeout(3000)
@pytest.mark.xfail(strict=False, reason="measured 2026-12-07: the random-init model already ranks the 64 held-out "
                   "AVA-style images at +0.27 [+0.01, +0.50] with its aesthetics prompts, and pre-training reaches "
                   "+0.26: a zero-shot gain of -0.01 [-0.32, +0.34], not >= 0.2 with confidence (README)")
def test_pre_training_lifts_zero_shot_aesthetics_on_held_out_images(demo_run):
    out, _ = demo_run
    checks = json.loads((out / "metrics.json").read_text())["checks"]
    assert checks["zero_shot_gain_at_least_0.2"]["per"]["ava/aesthetics"]["passed"] is True
    assert checks["zero_shot_gain_at_least_0.2"]["passed"] is True
