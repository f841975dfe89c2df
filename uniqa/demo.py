"""``uniqa demo``: the whole method end to end on the embedded sample corpus (CPU, no downloads), resumable.

sample corpus -> manifests -> captions (offline ``attributes`` captioner) -> purified comments (bag-of-words
relevance) -> corpus (``holdout: split_0``: split_0's test-side images never reach pre-training) -> the classic
metrics' scores (NIQE, BRISQUE: the baselines, no model) -> zero-shot scores of the random-init model
pre-training starts from (``OUT/init``) -> pre-training (Ray Train, 2 workers)
-> zero-shot scores of ``OUT/pretrain/final`` -> features -> adapter sweeps (``uniqa tune``: quality head on
the IQA part, aesthetics head on the IAA part) -> scores with the adapted heads -> evaluation of each phase on
split_0's test side -> ``OUT/metrics.json``, ``OUT/configs.json``, ``OUT/demo_summary.json`` -> the report.

Every step is the stage's own run function, found through its ``COMMAND`` and called as ``uniqa <stage>``
calls it (inputs by flag name, a config built from a dict like a ``--config`` file), into ``OUT/<step>``, and
writes its ``_summary.json``. Reruns resume: ``OUT/_demo_state.json`` records, per step, a key (its config and
the summaries of the steps it reads) and the summary it wrote. A step whose key is unchanged and whose summary
is still the complete one it wrote is skipped ("already done"); one interrupted with an unchanged key is run
again and resumes natively (scoring, pre-training, sweeps, ...); a step whose key changed starts afresh.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uniqa.evaluation.config import BootstrapConfig
    from uniqa.evaluation.paired import PartScores

DEMO_CPUS = 2  # the logical CPUs of the demo's Ray session; every step below is sized to fit them
# Pre-training recipe of the demo (PretrainConfig keys); the model everywhere (before/after/features/adapters).
# Texts: MOS-guided captions and purified comments, plus the "{level} image" prompt (the zero-shot head's own
# wording) at a quarter of a caption's weight. Measured 2026-12-04 on the 40-reference sample (SRCC on the held-out
# side, after -> adapted): prompts 0: kadid10k quality +0.34 -> +0.66, AVA aesthetics -0.09 -> +0.51; 0.25: +0.37 ->
# +0.70 and +0.26 -> +0.57 (on the 8-reference sample, weight 1.0 had left the adapter nothing that transferred).
DEMO_PRETRAIN = {"model": "uniqa-small", "lr": 1e-3, "weight_decay": 0.1, "beta2": 0.98, "batch_size": 64,
                 "warmup_steps": 50, "max_logit_scale": 100.0, "steps": 600, "num_workers": 2,
                 "cpus_per_worker": 0.5, "decode_cpus": 0.5, "threads": 1, "checkpoint_every": 500,
                 "sources": {"level_prompt": 0.25}}
# Zero-shot and adapted scoring (ScoreConfig keys, model and heads aside): the test views of the features.
DEMO_SCORE = {"views": "crops10", "num_cpus": 1.0, "decode_cpus": 0.5, "rows_per_block": 64}
DEMO_FEATURES = {"train_views": 8, "test_views": "crops10", "seed": 0, "num_cpus": 1.0, "decode_cpus": 0.5}
# The adapter sweeps: tuning/adapter-<head>.yaml, made small (TuneConfig keys, merged over the file).
# One trial at a time: ASHA's stopping decisions then do not depend on which of two trials reports first.
DEMO_SWEEP = {"num_samples": 4, "max_concurrent": 1, "resources": {"cpu": 1}}
# The sample's AVA part trains on 32 images (4 steps an epoch at batch 8): its sweep needs more epochs.
DEMO_SWEEP_HEAD = {"quality": {},
                   "aesthetics": {"search_space": {"epochs": {"choice": [20, 40]}},
                                  "scheduler": {"max_t": 40, "grace_period": 5}}}
SWEEP_DIR = Path(__file__).resolve().parents[1] / "tuning"
PARTS = {"iqa": ("kadid10k", "quality"), "iaa": ("ava", "aesthetics")}  # manifest part -> (dataset, its head)
PHASES = ("before", "after", "adapted")
# The baselines every phase is measured against: classic no-reference metrics (no training, no model), scored once.
BASELINE, CLASSIC_HEADS = "classic", ("niqe", "brisque")
SPLIT = "split_0"
SIDE = "test"  # the side of SPLIT every phase is scored and evaluated on
CHECKED = ("kadid10k/quality", "ava/aesthetics")  # metrics.json's checks hold when they hold for each of these
STATE_FILE = "_demo_state.json"
NO_RAY = ("uniqa.data.", "uniqa.evaluation.")  # stages that run in this process


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole method on the embedded sample corpus: pre-train, adapt, evaluate, "
                                    "report (CPU, no downloads, resumable)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="output folder, local or s3:// (default runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="sample corpus seed (default 0)")
    p.add_argument("--pretrain-steps", type=int, default=None, help=argparse.SUPPRESS)  # short runs while developing
    p.set_defaults(func=run)


@dataclass(frozen=True)
class Step:
    """One step: a stage run (or several calls of it) into ``OUT/<name>``."""

    name: str  # its output folder under OUT; also its key in configs.json and the state
    command: str | None  # "module:ATTR" of its StageCommand; None: the demo's own (sample, init)
    config: dict  # the config dict the stage gets (as a --config file's contents)
    calls: tuple[dict, ...] = ({},)  # inputs of each call, by flag name
    needs: tuple[str, ...] = ()  # the steps whose outputs it reads
    progress: bool = False  # the stage's own progress output (pre-training's step lines)

    @property
    def uses_ray(self) -> bool:
        return self.command is not None and not self.command.startswith(NO_RAY)


def sweep_config(head: str, model: str) -> dict:
    """tuning/adapter-<head>.yaml with :data:`DEMO_SWEEP` and the head's :data:`DEMO_SWEEP_HEAD` over it and
    ``base.model`` set."""
    from uniqa.config import merge, read_config_file
    from uniqa.errors import UniqaError

    path = SWEEP_DIR / f"adapter-{head}.yaml"
    if not path.is_file():
        raise UniqaError(f"sweep file {path} not found: the demo runs from a checkout of the repository")
    return merge(read_config_file(str(path)), {**DEMO_SWEEP, **DEMO_SWEEP_HEAD[head], "base": {"model": model}})


def plan(out: str, seed: int, pretrain: dict) -> list[Step]:
    """The demo's steps, in order."""
    from uniqa import storage

    def at(*parts: str) -> str:
        return storage.join(out, *parts)

    final, heads = at("pretrain", "final"), ["quality", "aesthetics"]
    roots = {"iqa": "kadid10k", "iaa": "ava"}
    steps = [Step("sample", None, {"seed": seed})]
    steps += [Step(f"manifests/{p}", "uniqa.data.cli:PREPARE", {}, ({"name": n, "root": at("sample", p)},),
                   ("sample",)) for p, n in roots.items()]
    # the held-out side alone: what every phase scores (evaluation reads only it)
    steps += [Step(f"manifests/{p}-{SIDE}", "uniqa.data.cli:PREPARE", {},
                   ({"name": "manifest", "root": at("manifests", p), "options": {"split": SPLIT, "side": SIDE}},),
                   (f"manifests/{p}",)) for p in roots]
    steps += [
        Step("captions", "uniqa.captioning.cli:COMMAND", {"backend": "attributes"},
             tuple({"manifest": at("manifests", p)} for p in PARTS), ("manifests/iqa", "manifests/iaa")),
        # bag-of-words relevance: meaningful without pretrained CLIP weights (embedder.name=clip with weights)
        Step("purified", "uniqa.purification.cli:COMMAND", {"embedder": {"name": "bow"}},
             ({"manifest": at("manifests", "iaa"), "captions": at("captions")},), ("manifests/iaa", "captions")),
        Step("corpus", "uniqa.corpus.cli:COMMAND", {"holdout": SPLIT},
             ({"manifest": [at("manifests", p) for p in PARTS], "captions": [at("captions")],
               "purified": [at("purified")]},), ("manifests/iqa", "manifests/iaa", "captions", "purified")),
        Step("init", None, {"model": pretrain["model"], "seed": pretrain.get("seed", 0)}),
    ]
    steps += phase(out, BASELINE, {"heads": list(CLASSIC_HEADS)}, ())
    steps += phase(out, "before", {"model": at("init"), "heads": heads}, ("init",))
    steps.append(Step("pretrain", "uniqa.training.cli:COMMAND", pretrain, ({"corpus": at("corpus")},), ("corpus",),
                      progress=True))
    steps += phase(out, "after", {"model": final, "heads": heads}, ("pretrain",))
    steps += [Step(f"features/{p}", "uniqa.features.cli:COMMAND",  # the tune steps use split_0: held out
                   {"model": final, **DEMO_FEATURES, "leak_splits": [SPLIT]},
                   ({"manifest": at("manifests", p)},), ("pretrain", f"manifests/{p}")) for p in PARTS]
    steps += [Step(f"tune/{head}", "uniqa.tuning.cli:COMMAND", sweep_config(head, final),
                   ({"manifest": at("manifests", p), "features": at("features", p)},),
                   ("pretrain", f"manifests/{p}", f"features/{p}")) for p, (_, head) in PARTS.items()]
    adapted = [f"{h}={at('tune', h, 'best')}" for h in heads]
    steps += phase(out, "adapted", {"model": final, "heads": adapted}, ("pretrain", "tune/quality", "tune/aesthetics"))
    return steps


def phase(out: str, name: str, score: dict, needs: tuple[str, ...]) -> list[Step]:
    """Scores of split_0's test side of both manifest parts with one model and head set, then their evaluation."""
    from uniqa import storage

    steps = []
    for p in PARTS:
        held_out = f"manifests/{p}-{SIDE}"
        manifest = storage.join(out, held_out)
        steps.append(Step(f"scores/{name}/{p}", "uniqa.scoring.cli:COMMAND", {**score, **DEMO_SCORE},
                          ({"input": manifest},), (*needs, held_out)))
        steps.append(Step(f"evaluation/{name}/{p}", "uniqa.evaluation.cli:COMMAND", {"split": SPLIT, "side": SIDE},
                          ({"scores": storage.join(out, "scores", name, p), "manifest": manifest},),
                          (f"scores/{name}/{p}", held_out)))
    return steps


# ---------------------------------------------------------------- resume


def step_key(step: Step, state: dict, out: str) -> str:
    """What a step's result depends on: its command, config and inputs (paths relative to ``out``: a moved run
    folder keeps its keys) and the summaries of the steps it reads."""
    upstream = {name: (state.get(name) or {}).get("done") for name in step.needs}
    text = json.dumps({"command": step.command, "config": step.config, "calls": step.calls, "upstream": upstream},
                      sort_keys=True, default=str).replace(json.dumps(out.rstrip("/") + "/")[1:-1], "<OUT>/")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def decide(entry: dict | None, key: str, current: str | None) -> str:
    """``skip`` (the state's entry has this key and the step's summary is still the complete one it recorded),
    ``resume`` (same key, not finished: run again, the stage resumes) or ``fresh`` (new or changed: start over)."""
    if not entry or entry.get("key") != key:
        return "fresh"
    return "skip" if entry.get("done") and entry["done"] == current else "resume"


def summary_stamp(out: str, step: Step) -> str | None:
    """The sha256 of the step's ``_summary.json`` when it says complete (the sample: of its text files)."""
    from uniqa import storage
    from uniqa.stage import SUMMARY_FILE

    folder = storage.join(out, step.name)
    if step.name == "sample":
        from uniqa.data.sample import TEXT_FILES, checksum

        ok = all(storage.exists(storage.join(folder, f)) for f in TEXT_FILES)
        return checksum(folder, TEXT_FILES) if ok else None
    uri = storage.join(folder, SUMMARY_FILE)
    if not storage.exists(uri):
        return None
    data = storage.read_bytes(uri)
    return hashlib.sha256(data).hexdigest() if json.loads(data).get("complete") else None


def clear(uri: str) -> None:
    from uniqa import storage

    if storage.exists(uri):
        fs, path = storage.resolve(uri)
        fs.delete_dir(path)


# ---------------------------------------------------------------- running steps


def run_stage(command_ref: str, out: str, config: dict[str, Any], progress: bool = False, **inputs: Any):
    """Run the stage that ``command_ref`` ("module:ATTR", a :class:`~uniqa.stagecli.StageCommand`) declares, as
    the CLI would: ``inputs`` by flag name (``input`` for ``--input``), ``config`` as a config file's contents;
    returns its :class:`~uniqa.stage.StageSummary`. ``options`` (prepare's ``-o key=value``) is passed on as is."""
    from uniqa.config import from_dict

    module, _, attr = command_ref.partition(":")
    command = getattr(importlib.import_module(module), attr)
    args = [inputs[arg.dest] if arg.dest in inputs or arg.required else [] if arg.multiple else None
            for arg in command.inputs]
    cfg = from_dict(command.load(command.config), config)
    extra = {"options": inputs["options"]} if "options" in inputs else {}
    return command.load(command.run)(*args, out, cfg, progress=progress, **extra)


def build_init(out: str, config: dict):
    """``OUT/init``: the random-init weights pre-training starts from (the training loop's own ``build_model``,
    same config and seed), a checkpoint folder ``uniqa score --model`` takes."""
    from uniqa.config import from_dict
    from uniqa.models import resolve_model_name
    from uniqa.stage import StageSummary, Timer, config_fingerprint
    from uniqa.training.config import PretrainConfig
    from uniqa.training.loop import save_initial_weights

    with Timer() as timer:
        cfg = from_dict(PretrainConfig, config)
        name = resolve_model_name(cfg.model)
        sha = save_initial_weights(cfg, name, out)
    return StageSummary(stage="init", inputs={}, output=out, rows_in=1, rows_out=1, rows_written=1,
                        seconds=timer.seconds, unit="checkpoints", config_fingerprint=config_fingerprint(config),
                        details={"model": name, "seed": cfg.seed, "sha256": sha,
                                 "built_by": "uniqa.training.loop.build_model"}).write()


def run_step(step: Step, out: str) -> list:
    """Run ``step`` into ``OUT/<step.name>`` -> the summaries of its calls (the sample: none)."""
    from uniqa import storage

    folder = storage.join(out, step.name)
    if step.name == "sample":
        from uniqa.data.sample import build_sample

        if summary_stamp(out, step) is None:  # kept between runs (a copy of a built sample is used as is)
            build_sample(folder, seed=step.config["seed"])
        return []
    if step.name == "init":
        return [build_init(folder, step.config)]
    return [run_stage(step.command, folder, step.config, step.progress, **call) for call in step.calls]


def ensure_ray() -> None:
    """One local Ray session of :data:`DEMO_CPUS` CPUs for every stage (a no-op when Ray is already up)."""
    from uniqa.runtime import init_ray

    # Ray's default object store: capped at 1 GiB, Ray Data's budget kept the pre-training stream backpressured
    # and its split coordinator busy-looping (~55% of a core on 2 CPUs, 98 vs 150 img/s)
    init_ray(None, num_cpus=DEMO_CPUS)


def execute(steps: list[Step], out: str, state: dict, save) -> bool:
    """Run or skip each step in order (see the module docstring); False when a step ends incomplete."""
    from uniqa import storage

    for i, step in enumerate(steps, 1):
        key, folder = step_key(step, state, out), storage.join(out, step.name)
        action = decide(state.get(step.name), key, summary_stamp(out, step))
        label = f"[demo] {i:2d}/{len(steps)} {step.name}"
        if action == "skip":
            print(f"{label}: already done", flush=True)
            continue
        if action == "fresh" and (step.name != "sample" or step.name in state):  # a sample of another seed goes
            clear(folder)
        state[step.name] = {"key": key, "done": None}
        save()
        print(f"{label}: {'resuming' if action == 'resume' else 'running'} ...", flush=True)
        if step.uses_ray:
            ensure_ray()
        start = time.perf_counter()
        summaries = run_step(step, out)
        seconds = time.perf_counter() - start
        for s in summaries:
            print(f"        {s.line()}", flush=True)
        print(f"{label}: done in {seconds:.1f} s", flush=True)
        if any(not s.complete for s in summaries):
            print(f"[demo] {step.name} is incomplete: rerun the demo to continue", flush=True)
            return False
        state[step.name].update(done=summary_stamp(out, step), seconds=round(seconds, 1),
                                summaries=[{k: v for k, v in s.to_dict().items() if k != "details"}
                                           for s in summaries])
        save()
    return True


# ---------------------------------------------------------------- results


GAINS = {"zero_shot_gain": ("before", "after"), "adapter_gain": ("after", "adapted")}  # gain -> (earlier, later)
# adapted - the classic metric (CLASSIC_HEADS) with the highest SRCC on the same rows, with the paired interval
CLASSIC_GAIN = "adapted_over_best_classic"
# check -> (the gain it reads, its rule, whether one dataset/head's gain {"point", "ci": [lo, hi]} passes it, the
# dataset/heads it must pass on)
CHECKS = {
    "zero_shot_gain_at_least_0.2": ("zero_shot_gain", "point >= 0.2 and the paired interval's lower end > 0",
                                    lambda g: g["point"] >= 0.2 and g["ci"][0] > 0, CHECKED),
    "adapter_above_zero_shot": ("adapter_gain", "the paired interval's lower end > 0", lambda g: g["ci"][0] > 0,
                                CHECKED),
    "adapted_above_best_classic": (CLASSIC_GAIN, "the paired interval of adapted - the best classic metric has its "
                                   "lower end > 0", lambda g: g["ci"][0] > 0, ("kadid10k/quality",)),
}


def result_row(phase: str, row: dict) -> dict:
    """One metrics.json result from an evaluation table row: SRCC and PLCC with their interval (None without)."""
    def ci(name: str) -> list[float] | None:
        lo, hi = row.get(f"{name}_lo"), row.get(f"{name}_hi")
        return None if lo is None or hi is None else [lo, hi]

    return {"phase": phase, "dataset": row["dataset"], "head": row["head"], "n": row["n"],
            "groups": row.get("groups"), "srcc": row["srcc"], "srcc_ci": ci("srcc"), "plcc": row["plcc"],
            "plcc_ci": ci("plcc"), "krcc": row["krcc"]}


def decide_checks(gains: dict[str, dict[str, dict]]) -> dict:
    """Each check of :data:`CHECKS` per dataset/head of its gain; it passes when it passes for each of CHECKED."""
    out = {}
    for name, (gain, rule, passes, on) in CHECKS.items():
        per = {key: {"point": g["point"], "ci": g["ci"],
                     "passed": g["point"] is not None and g["ci"] is not None and bool(passes(g))}
               for key, g in gains[gain].items()}
        out[name] = {"passed": all(per.get(k, {}).get("passed", False) for k in on), "rule": rule, "on": list(on),
                     "per": per}
    return out


def best_classic(part: PartScores) -> str | None:
    """The classic metric's phase key (:func:`baseline_phase`) with the highest SRCC on ``part``'s rows."""
    import numpy as np

    from uniqa.evaluation.metrics import srcc

    found = {}
    for key in (baseline_phase(m) for m in CLASSIC_HEADS):
        values = part.scores.get(key)
        ok = np.isfinite(values) if values is not None else None
        if ok is not None and ok.sum() >= 3:
            found[key] = srcc(values[ok], part.mos[ok])
    found = {k: v for k, v in found.items() if np.isfinite(v)}
    return max(found, key=found.get) if found else None


def assemble_metrics(tables: dict[str, list[dict]], parts: list[PartScores],
                     cfg: BootstrapConfig | None = None) -> dict:
    """metrics.json: the results of the evaluation summaries' tables (phase -> rows of ``details.table``) on
    SPLIT's test side; the gains of each part (:class:`~uniqa.evaluation.paired.PartScores`: per-phase scores of
    its rows) with paired bootstrap intervals; the checks, decided on those intervals."""
    from uniqa.evaluation.config import BootstrapConfig
    from uniqa.evaluation.paired import gain

    cfg = cfg or BootstrapConfig()
    results = [result_row(phase, row) for phase, rows in tables.items() for row in rows
               if row["split"] == SPLIT and row["side"] == "test"]
    gains = {name: {p.key: gain(p, earlier, later, cfg) for p in parts} for name, (earlier, later) in GAINS.items()}
    gains[CLASSIC_GAIN] = {p.key: {**gain(p, best or "", "adapted", cfg), "baseline": best}
                           for p, best in ((p, best_classic(p)) for p in parts)}
    return {"split": SPLIT, "side": "test", "results": results, **gains, "checked": list(CHECKED),
            "checks": decide_checks(gains),
            "bootstrap": {"resamples": cfg.resamples, "seed": cfg.seed, "level": cfg.level,
                          "unit": {p.dataset: p.unit for p in parts},
                          "gains": "paired: both phases on the same resamples of the rows both scored without error"}}


def read_parts(out: str) -> list[PartScores]:
    """Each part's SPLIT test rows with every phase's score of its head (from OUT/manifests and OUT/scores)."""
    from uniqa import storage
    from uniqa.evaluation.paired import read_part

    def scores(p: str) -> dict:
        classic = {baseline_phase(m): (storage.join(out, "scores", BASELINE, p), m) for m in CLASSIC_HEADS}
        return {**{ph: storage.join(out, "scores", ph, p) for ph in PHASES}, **classic}

    return [read_part(storage.join(out, "manifests", p), scores(p), dataset, head, SPLIT)
            for p, (dataset, head) in PARTS.items()]


def baseline_phase(metric: str) -> str:
    """A classic metric's key among a part's phase scores: ``classic/niqe``."""
    return f"{BASELINE}/{metric}"


def write_results(out: str, steps: list[Step], state: dict, seconds: float) -> dict:
    """OUT/metrics.json, OUT/configs.json and OUT/demo_summary.json -> the metrics."""
    from uniqa import storage
    from uniqa.stage import read_summary

    tables = {phase: [row for p in PARTS for row in read_summary(storage.join(out, "evaluation", phase, p))
                      ["details"]["table"]] for phase in (BASELINE, *PHASES)}
    metrics = assemble_metrics(tables, read_parts(out))
    took = [state[step.name].get("seconds") or 0.0 for step in steps]
    summary = {"out": out, "seconds": round(sum(took), 1),  # the steps' time, over the runs that made the outputs
               "this_run_seconds": round(seconds, 1),  # up to here: skipped steps take none
               "stages": [s for step in steps for s in state[step.name].get("summaries", [])],
               "steps": [{"name": step.name, "seconds": state[step.name].get("seconds")} for step in steps],
               "paths": {step.name: storage.join(out, step.name) for step in steps}}
    for name, data in (("metrics.json", metrics), ("configs.json", {s.name: s.config for s in steps}),
                       ("demo_summary.json", summary)):
        storage.write_bytes(storage.join(out, name), json.dumps(data, indent=2, default=str).encode())
    return metrics


def with_ci(value: float | None, ci: list[float] | None) -> str:
    """``+0.412 [+0.30, +0.51]`` (the point alone without an interval, ``n/a`` without a point)."""
    if value is None:
        return "n/a"
    return f"{value:+.3f}" + ("" if not ci else f" [{ci[0]:+.2f}, {ci[1]:+.2f}]")


def print_metrics(metrics: dict) -> None:
    boot = metrics.get("bootstrap") or {}
    level = f"{boot.get('level', 0.95):.0%}"
    units = ", ".join(f"{dataset}: {unit}s" for dataset, unit in (boot.get("unit") or {}).items())
    print(f"\n[demo] SRCC on {metrics['split']}'s {metrics['side']} side (held-out references), per phase, with "
          f"{level} bootstrap intervals ({boot.get('resamples')} resamples of {units}):")
    print(f"  {'dataset/head':20s} {'n':>4s} {'groups':>6s} " + " ".join(f"{p:>22s}" for p in (BASELINE, *PHASES)))
    rows: dict[str, dict] = {}
    for r in metrics["results"]:
        rows.setdefault(f"{r['dataset']}/{r['head']}", {"n": r["n"], "groups": r.get("groups")})[r["phase"]] = r
    for name, row in rows.items():
        cells = " ".join(f"{with_ci(row[p]['srcc'], row[p].get('srcc_ci')) if p in row else '':>22s}"
                         for p in (BASELINE, *PHASES))
        print(f"  {name:20s} {row['n']:4d} {row['groups'] or 0:6d} {cells}")
    print(f"[demo] SRCC gains with paired {level} intervals (both phases on the same resamples):")
    for gain, (earlier, later) in GAINS.items():
        for key, g in metrics[gain].items():
            print(f"  {f'{gain} ({later} - {earlier})':46s} {key:20s} {with_ci(g['point'], g['ci'])}")
    for key, g in metrics.get(CLASSIC_GAIN, {}).items():
        best = (g.get("baseline") or "none").split("/")[-1]
        print(f"  {f'{CLASSIC_GAIN} (adapted - {best})':46s} {key:20s} {with_ci(g['point'], g['ci'])}")
    for name, c in metrics["checks"].items():
        per = ", ".join(f"{key} {'yes' if e['passed'] else 'no'}" for key, e in c["per"].items())
        on = ", ".join(c.get("on") or CHECKED)
        print(f"  check {name} ({c['rule']}; on {on}): {'yes' if c['passed'] else 'NO'} ({per})")


def run(args) -> int:
    import logging

    import ray

    from uniqa import storage
    from uniqa.errors import UniqaError

    if args.pretrain_steps is not None and args.pretrain_steps < 1:
        raise UniqaError(f"--pretrain-steps must be >= 1, got {args.pretrain_steps}")
    logging.getLogger("ray").setLevel(logging.WARNING)  # the demo prints its own per-step lines
    out, start = args.out, time.perf_counter()
    pretrain = {**DEMO_PRETRAIN, **({"steps": args.pretrain_steps} if args.pretrain_steps else {})}
    steps = plan(out, args.seed, pretrain)
    state_uri = storage.join(out, STATE_FILE)
    state = json.loads(storage.read_bytes(state_uri)) if storage.exists(state_uri) else {}

    def save() -> None:
        storage.write_bytes(state_uri, json.dumps(state, indent=1, default=str).encode())

    started_ray = not ray.is_initialized()
    try:
        finished = execute(steps, out, state, save)
    finally:
        if started_ray and ray.is_initialized():
            ray.shutdown()
    if not finished:
        return 1
    metrics = write_results(out, steps, state, time.perf_counter() - start)
    print_metrics(metrics)
    from uniqa.report import build_report

    report = build_report(out)
    print(f"[demo] finished in {time.perf_counter() - start:.1f} s; metrics {storage.join(out, 'metrics.json')}")
    print(f"[demo] report: {report}")
    return 0
