"""``uniqa demo``: the whole method end to end on the embedded sample corpus (CPU, no downloads), resumable.

sample corpus -> manifests -> captions (offline ``attributes`` captioner) -> purified comments (bag-of-words
relevance) -> corpus (``holdout: split_0``: split_0's test-side images never reach pre-training) -> the classic
metrics' scores (NIQE, BRISQUE: the baselines, no model) -> zero-shot scores of the random-init model
pre-training starts from (``OUT/init``) -> pre-training (Ray Train, 2 workers)
-> zero-shot scores of ``OUT/pretrain/final`` -> features -> adapter sweeps (``uniqa tune``: quality head on
the IQA part, aesthetics head on the IAA part) -> scores with the adapted heads -> evaluation of each phase on
split_0's test side -> ``OUT/metrics.json``, ``OUT/configs.json``, ``OUT/demo_summary.json`` -> the report
(``OUT/report``).

The steps are data: ``uniqa/demo/recipe.yaml`` (``--recipe FILE`` runs an edited copy). Each step is a stage
of :mod:`uniqa.stages` run as ``uniqa <stage>`` runs it, into ``OUT/<step>``, writing its ``_summary.json``.
Reruns resume (:mod:`uniqa.demo.steps`): a step whose inputs and config are unchanged and whose output is
complete is skipped, an interrupted one resumes natively, a changed one starts afresh.
"""

from __future__ import annotations

import argparse
import json
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole method on the embedded sample corpus: pre-train, adapt, evaluate, "
                                    "report (CPU, no downloads, resumable)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="output folder, local or s3:// (default runs/demo)")
    p.add_argument("--recipe", help="the steps, as a YAML file (default: uniqa/demo/recipe.yaml)")
    p.set_defaults(func=run)


def demo_summary(recipe, out: str, state: dict, done_before: int, seconds: float):
    """``OUT/_summary.json`` of the demo (stage ``demo``, a row per step): ``details.steps`` maps each step's
    folder to its stage, which is how ``uniqa report`` finds what the run holds."""
    from uniqa.stage import StageSummary, config_fingerprint

    done = sum(bool((state.get(s.name) or {}).get("done")) for s in recipe.steps)
    steps = {s.name: s.stage for s in recipe.steps}
    return StageSummary(stage="demo", inputs={"recipe": recipe.source}, output=out, rows_in=len(steps),
                        rows_out=done, rows_written=max(done - done_before, 0), already_done=done_before,
                        seconds=seconds, unit="steps", config_fingerprint=config_fingerprint(
                            {s.name: [s.stage, s.config, s.calls] for s in recipe.steps}),
                        details={"steps": steps}).write()


def run(args) -> int:
    import logging

    import ray

    from uniqa import storage
    from uniqa.demo.recipe import load_recipe
    from uniqa.demo.results import has_results, print_metrics, write_results
    from uniqa.demo.steps import STATE_FILE, execute

    recipe = load_recipe(args.recipe)  # checked before anything runs
    logging.getLogger("ray").setLevel(logging.WARNING)  # the demo prints its own per-step lines
    out, start = args.out, time.perf_counter()
    state_uri = storage.join(out, STATE_FILE)
    state = json.loads(storage.read_bytes(state_uri)) if storage.exists(state_uri) else {}

    def save() -> None:
        storage.write_bytes(state_uri, json.dumps(state, indent=1, default=str).encode())

    done_before = sum(bool((state.get(s.name) or {}).get("done")) for s in recipe.steps)
    started_ray = not ray.is_initialized()
    try:
        finished = execute(recipe, out, state, save)
    finally:
        if started_ray and ray.is_initialized():
            ray.shutdown()
    summary = demo_summary(recipe, out, state, done_before, time.perf_counter() - start)
    if not finished:
        print(summary.line())
        return 1
    if not has_results([s.name for s in recipe.steps]):
        print(f"[demo] finished in {time.perf_counter() - start:.1f} s; the recipe leaves out steps the results "
              f"read (uniqa.demo.results): no metrics.json, no report")
        return 0
    metrics = write_results(out, list(recipe.steps), state, time.perf_counter() - start)
    print_metrics(metrics)
    from uniqa.report.run import run_report

    report = run_report(out, progress=False).details["html"]  # the report stage, into OUT/report
    print(f"[demo] finished in {time.perf_counter() - start:.1f} s; metrics {storage.join(out, 'metrics.json')}")
    print(f"[demo] report: {report}")
    return 0
