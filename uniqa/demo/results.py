"""The demo's results: ``OUT/metrics.json`` (each phase's SRCC / PLCC / KRCC on split_0's test side, the gains
between phases with paired bootstrap intervals, and the checks decided on them), ``OUT/configs.json`` and
``OUT/demo_summary.json``, and the table the demo prints.

They read the folders the recipe's steps write: ``OUT/manifests/<part>``, ``OUT/scores/<phase>/<part>`` and
``OUT/evaluation/<phase>/<part>`` for each part of :data:`PARTS` and each of :data:`SCORED`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uniqa.demo.recipe import Step
    from uniqa.evaluation.config import BootstrapConfig
    from uniqa.evaluation.paired import PartScores

PARTS = {"iqa": ("kadid10k", "quality"), "iaa": ("ava", "aesthetics")}  # manifest part -> (dataset, its head)
PHASES = ("before", "after", "adapted")
# The baselines every phase is measured against: classic no-reference metrics (no training, no model), scored once.
BASELINE, CLASSIC_HEADS = "classic", ("niqe", "brisque")
SCORED = (BASELINE, *PHASES)  # every scored phase, in report order
SPLIT = "split_0"
SIDE = "test"  # the side of SPLIT every phase is scored and evaluated on
CHECKED = ("kadid10k/quality", "ava/aesthetics")  # metrics.json's checks hold when they hold for each of these


def has_results(names: list[str]) -> bool:
    """Whether a recipe of steps ``names`` writes every folder the results read (an edited recipe may not)."""
    needed = [f"manifests/{p}" for p in PARTS] + [f"{kind}/{phase}/{p}" for kind in ("scores", "evaluation")
                                                  for phase in SCORED for p in PARTS]
    return set(needed) <= set(names)


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
                      ["details"]["table"]] for phase in SCORED}
    metrics = assemble_metrics(tables, read_parts(out))
    took = [state[step.name].get("seconds") or 0.0 for step in steps]
    summary = {"out": out, "seconds": round(sum(took), 1),  # the steps' time, over the runs that made the outputs
               "this_run_seconds": round(seconds, 1),  # up to here: skipped steps take none
               "stages": [s for step in steps for s in state[step.name].get("summaries", [])],
               "steps": [{"name": step.name, "seconds": state[step.name].get("seconds")} for step in steps],
               "paths": {step.name: storage.join(out, step.name) for step in steps}}
    for name, data in (("metrics.json", metrics), ("configs.json", {s.name: s.config_at(out) for s in steps}),
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
    print(f"  {'dataset/head':20s} {'n':>4s} {'groups':>6s} " + " ".join(f"{p:>22s}" for p in SCORED))
    rows: dict[str, dict] = {}
    for r in metrics["results"]:
        rows.setdefault(f"{r['dataset']}/{r['head']}", {"n": r["n"], "groups": r.get("groups")})[r["phase"]] = r
    for name, row in rows.items():
        cells = " ".join(f"{with_ci(row[p]['srcc'], row[p].get('srcc_ci')) if p in row else '':>22s}"
                         for p in SCORED)
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
