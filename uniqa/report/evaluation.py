"""Sections about how well the scores follow MOS: predicted score vs MOS per head, dataset and phase, and SRCC per
distortion type with its bootstrap interval (the headline numbers of ``metrics.json``: :mod:`uniqa.report.headline`),
and the helpers they share: which phases and (dataset, head) pairs a run shows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uniqa.demo.results import BASELINE, SCORED
from uniqa.evaluation.bootstrap import Interval, bootstrap_units, interval
from uniqa.evaluation.config import BootstrapConfig
from uniqa.report import plots
from uniqa.report.html import esc, fmt, fmt_interval, image, table
from uniqa.report.load import RunFolder, head_columns

# KADID-10k's distortion types, in its numbering (Lin, Hosu, Saupe 2019, table 1).
KADID10K_TYPES = {
    1: "gaussian blur", 2: "lens blur", 3: "motion blur", 4: "color diffusion", 5: "color shift",
    6: "color quantization", 7: "color saturation 1", 8: "color saturation 2", 9: "jpeg2000", 10: "jpeg",
    11: "white noise", 12: "white noise in color component", 13: "impulse noise", 14: "multiplicative noise",
    15: "denoise", 16: "brighten", 17: "darken", 18: "mean shift", 19: "jitter", 20: "non-eccentricity patch",
    21: "pixelate", 22: "quantization", 23: "color block", 24: "high sharpen", 25: "contrast change",
}


def distortion_names(run: RunFolder, dataset: str) -> dict[int, str]:
    """Type id -> name: the embedded sample's own distortions (:mod:`uniqa.data.distortions`) when the dataset's
    images are the run's sample corpus, KADID-10k's 25 types for kadid10k, else none."""
    if run.from_sample(dataset):
        from uniqa.data.distortions import DISTORTIONS

        return {d.id: d.name.replace("_", " ") for d in DISTORTIONS}
    return dict(KADID10K_TYPES) if dataset == "kadid10k" else {}


def phases_of(run: RunFolder) -> list[str]:
    """Phases with results or scores, the demo phases first."""
    found = {r["phase"] for r in (run.metrics or {}).get("results", [])} | set(run.phase_scores)
    return [p for p in SCORED if p in found] + sorted(found - set(SCORED))


def pairs(run: RunFolder) -> list[tuple[str, str]]:
    """(dataset, head) pairs to show: those metrics.json reports, else each dataset of the evaluated side with the
    head named after its task (every scored head when none is)."""
    metrics = run.metrics or {}
    found = [(r["dataset"], r["head"]) for r in metrics.get("results", [])]
    for gains in ("zero_shot_gain", "adapter_gain"):
        found += [tuple(key.split("/", 1)) for key in metrics.get(gains, {}) if "/" in key]
    test = run.test_side
    if not found and test is not None:
        heads = sorted({h for frame in run.phase_scores.values() for h in head_columns(frame)})
        for dataset in sorted(test["dataset"].unique()):
            tasks = set(test.loc[test["dataset"] == dataset, "task"])
            found += [(dataset, h) for h in ([h for h in heads if h in tasks] or heads)]
    return list(dict.fromkeys(found))


# -------------------------------------------------------------------------------------------- scatter


def scatter(run: RunFolder) -> str | None:
    """Predicted score against ``mos_norm`` on the evaluated side: a row per (dataset, head), a panel per phase."""
    if run.test_side is None or not run.phase_scores:
        return None
    scored = {p: run.scored(p) for p in phases_of(run)}
    scored = {p: f for p, f in scored.items() if f is not None}
    rows = []
    for dataset, head in pairs(run):
        panels = []
        for phase, frame in scored.items():
            part = frame[frame["dataset"] == dataset]
            if head not in part.columns or part[head].notna().sum() == 0:
                continue
            part = part[part[head].notna()]
            panels.append(plots.Panel(f"{phase} (n={len(part)})", part["mos_norm"].to_numpy(float),
                                      part[head].to_numpy(float), plots.PHASE_COLOURS.get(phase, "tab:purple")))
        if panels:
            rows.append((f"{dataset} / {head}", panels))
    if not rows:
        return None
    split, side = run.split
    return (f'<p class="intro">Each point is one image of the {esc(side)} side of {esc(split)}; x: its MOS '
            "normalised to [0, 1] (higher is better), y: the head's score.</p>"
            + image(plots.scatter_grid(rows, "MOS (mos_norm)", "predicted score"), "predicted score vs MOS"))


# ---------------------------------------------------------------------------------------- distortions


def by_distortion(run: RunFolder) -> str | None:
    """SRCC within each distortion type (``attrs.dist_type``) on the evaluated side, per phase, with its
    bootstrap interval (the same units and resamples as the headline's: see :func:`bootstrap_config`)."""
    test = run.test_side
    if test is None or "dist_type" not in test.columns or not run.phase_scores:
        return None
    scored = {p: run.scored(p) for p in phases_of(run)}
    scored = {p: f for p, f in scored.items() if f is not None and "dist_type" in f.columns}
    cfg = bootstrap_config(run)
    html = ""
    for dataset, head in pairs(run):
        types = sorted(int(t) for t in test.loc[test["dataset"] == dataset, "dist_type"].dropna().unique())
        phases = [p for p, f in scored.items() if head in f.columns and (f["dataset"] == dataset).any()]
        if not types or not phases:
            continue
        columns = {**baselines(run, scored, head), **{p: scored[p] for p in phases}}
        html += distortion_part(run, dataset, head, types, columns, cfg)
    if not html:
        return None
    return ('<p class="intro">Spearman correlation among the images of one distortion type (all levels and '
            f"references of the evaluated side) with its {cfg.level:.0%} cluster-bootstrap interval (whole "
            "reference groups resampled for quality datasets, single images otherwise); – where it is undefined "
            "(fewer than 3 images or a constant side).</p>" + html)


def baselines(run: RunFolder, scored: dict, head: str) -> dict:
    """The classic phase's metrics beside a model head's per-distortion columns: ``"classic brisque"`` -> the classic
    scores with that metric under ``head``'s name (none when ``head`` is itself a classic metric)."""
    frame, scores = scored.get(BASELINE), run.phase_scores.get(BASELINE)
    if frame is None or scores is None or head in frame.columns:
        return {}
    return {f"{BASELINE} {c}": frame.rename(columns={c: head}) for c in head_columns(scores)}


def distortion_part(run: RunFolder, dataset: str, head: str, types: list[int], scored: dict,
                    cfg: BootstrapConfig) -> str:
    """One (dataset, head): bars with error bars and a table, a row per distortion type, a column per phase."""
    test, names = run.test_side, distortion_names(run, dataset)
    series = {p: [] for p in scored}
    bars: dict[str, list] = {p: [] for p in scored}
    body = []
    for t in types:
        n = int(((test["dataset"] == dataset) & (test["dist_type"] == t)).sum())
        cells = [str(t), esc(names.get(t, f"type {t}")), str(n)]
        for p, f in scored.items():
            part = f[(f["dataset"] == dataset) & (f["dist_type"] == t) & f[head].notna()]
            found = srcc_interval(part, head, cfg)
            series[p].append(float("nan") if found.point is None else found.point)
            bars[p].append(None if found.ci is None else tuple(found.ci))
            cells.append(f"{fmt(found.point)} {fmt_interval(found.ci, '.2f')}" if found.ci else fmt(found.point))
        body.append(cells)
    labels = [f"{t} {names.get(t, '')}".strip() for t in types]
    return (f"<h3>{esc(dataset)} / {esc(head)}</h3>"
            + image(plots.grouped_bars(labels, series, "SRCC within type", bars), f"SRCC per distortion, {dataset}")
            + table(["type", "distortion", "n", *(f"SRCC {p} [{cfg.level:.0%}]" for p in scored)], body, left=2))


def srcc_interval(rows: pd.DataFrame, head: str, cfg: BootstrapConfig) -> Interval:
    """SRCC of ``head`` against ``mos_norm`` over ``rows`` with its interval (point None where undefined)."""
    units = bootstrap_units(_column(rows, "task"), _column(rows, "group") if "group" in rows.columns else None,
                            rows["image_id"].to_numpy(object))
    return interval(rows[head].to_numpy(float), rows["mos_norm"].to_numpy(float), units, "srcc", cfg)


def _column(rows: pd.DataFrame, name: str) -> np.ndarray:
    return rows[name].to_numpy(object) if name in rows.columns else np.full(len(rows), None, dtype=object)


def bootstrap_config(run: RunFolder) -> BootstrapConfig:
    """The resamples, seed and level of metrics.json's ``bootstrap`` block (the defaults for runs without one)."""
    boot = (run.metrics or {}).get("bootstrap") or {}
    known = {k: boot[k] for k in ("resamples", "seed", "level") if k in boot}
    return BootstrapConfig(**known, allow_few=True)
