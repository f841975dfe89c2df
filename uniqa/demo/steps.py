"""Running a recipe's steps in order, with resume: ``OUT/_demo_state.json`` records, per step, a key (its stage,
config and calls, and the results of the steps it reads) and the summaries it wrote.

A step whose key is unchanged and whose ``_summary.json`` is still the complete one it wrote is skipped
("already done"); one interrupted with an unchanged key is run again and resumes natively (scoring,
pre-training, sweeps, ...); a step whose key changed starts afresh (its folder is cleared). A step this state
has never seen is run into its folder as it is, and the stage's own resume decides (a copied sample is found done).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

from uniqa.demo.recipe import Recipe, Step

STATE_FILE = "_demo_state.json"


def step_key(step: Step, state: dict) -> str:
    """What a step's result depends on: its stage, config and calls (with ``{out}``, not the run folder: a moved
    run folder keeps its keys) and the results of the steps it reads."""
    upstream = {name: (state.get(name) or {}).get("done") for name in step.needs}
    text = json.dumps({"stage": step.stage, "config": step.config, "calls": step.calls, "upstream": upstream},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def decide(entry: dict | None, key: str, current: str | None) -> str:
    """``skip`` (the state's entry has this key and the step's summary is still the complete one it recorded),
    ``resume`` (same key, not finished: run again, the stage resumes) or ``fresh`` (new or changed: start over)."""
    if not entry or entry.get("key") != key:
        return "fresh"
    return "skip" if entry.get("done") and entry["done"] == current else "resume"


def summary_stamp(out: str, step: Step) -> str | None:
    """The sha256 of the step's ``_summary.json`` when it says complete."""
    from uniqa import storage
    from uniqa.stage import SUMMARY_FILE

    uri = storage.join(out, step.name, SUMMARY_FILE)
    if not storage.exists(uri):
        return None
    data = storage.read_bytes(uri)
    return hashlib.sha256(data).hexdigest() if json.loads(data).get("complete") else None


def clear(uri: str) -> None:
    from uniqa import storage

    if storage.exists(uri):
        fs, path = storage.resolve(uri)
        fs.delete_dir(path)


def run_step(step: Step, out: str) -> list:
    """Run ``step`` into ``OUT/<step.name>`` -> the summaries of its calls."""
    from uniqa import storage
    from uniqa.stagecli import run_with
    from uniqa.stages import stage

    command, folder, config = stage(step.stage), storage.join(out, step.name), step.config_at(out)
    return [run_with(command, folder, config, call, progress=step.progress) for call in step.calls_at(out)]


def execute(recipe: Recipe, out: str, state: dict, save: Callable[[], None]) -> bool:
    """Run or skip each step in order (see the module docstring); False when a step ends incomplete. Steps of a
    stage that runs on Ray share one local session of ``recipe.ray_cpus`` CPUs, started before the first."""
    from uniqa import storage
    from uniqa.runtime import init_ray
    from uniqa.stages import stage

    steps = recipe.steps
    for i, step in enumerate(steps, 1):
        key, folder = step_key(step, state), storage.join(out, step.name)
        action = decide(state.get(step.name), key, summary_stamp(out, step))
        label = f"[demo] {i:2d}/{len(steps)} {step.name}"
        if action == "skip":
            print(f"{label}: already done", flush=True)
            continue
        if action == "fresh" and step.name in state:  # run before with another key: its output goes
            clear(folder)
        state[step.name] = {"key": key, "done": None}
        save()
        print(f"{label}: {'resuming' if action == 'resume' else 'running'} ...", flush=True)
        if stage(step.stage).ray:
            init_ray(None, num_cpus=recipe.ray_cpus)  # a no-op once Ray is up
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
