"""Sections about how well the scores follow MOS: the headline numbers of ``metrics.json`` (every one carried
by a ``data-metric`` element), predicted score vs MOS per head, dataset and phase, and SRCC per distortion type."""

from __future__ import annotations

from uniqa.errors import UniqaError
from uniqa.evaluation.metrics import srcc
from uniqa.report import plots
from uniqa.report.html import check, esc, fmt, image, metric, table
from uniqa.report.load import PHASES, RunFolder, head_columns

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


def safe_srcc(pred, mos) -> float:
    """SRCC, NaN where it is undefined (fewer than 3 points, a constant side)."""
    try:
        return srcc(pred, mos)
    except UniqaError:
        return float("nan")


def phases_of(run: RunFolder) -> list[str]:
    """Phases with results or scores, the demo phases first."""
    found = {r["phase"] for r in (run.metrics or {}).get("results", [])} | set(run.phase_scores)
    return [p for p in PHASES if p in found] + sorted(found - set(PHASES))


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


# ------------------------------------------------------------------------------------------- headline


def headline(run: RunFolder) -> str | None:
    """SRCC per phase with the gains and checks (one table), then n / PLCC / KRCC of every result row."""
    m = run.metrics
    if not m or not (m.get("results") or m.get("zero_shot_gain")):
        return None
    rows = {(r["phase"], r["dataset"], r["head"]): r for r in m.get("results", [])}
    phases = [p for p in phases_of(run) if any(k[0] == p for k in rows)]
    zero_shot, adapter = m.get("zero_shot_gain", {}), m.get("adapter_gain", {})
    header = ["dataset", "head", *(f"SRCC {p}" for p in phases), "zero-shot gain (after − before)",
              "adapter gain (adapted − after)"]
    body = []
    for dataset, head in pairs(run):
        key = f"{dataset}/{head}"
        cells = [esc(dataset), esc(head)]
        for p in phases:
            r = rows.get((p, dataset, head))
            cells.append(metric(f"{p}/{key}/srcc", r["srcc"]) if r else "–")
        cells.append(metric(f"gain/{key}", zero_shot[key], signed=True) if key in zero_shot else "–")
        cells.append(metric(f"adapter_gain/{key}", adapter[key], signed=True) if key in adapter else "–")
        body.append(cells)
    split, side = run.split
    html = (f'<p class="intro">SRCC against <code>mos_norm</code> on the <b>{esc(side)}</b> side of '
            f"<b>{esc(split)}</b>, whose images never reach pre-training or adapter training. <i>before</i>: "
            "zero-shot, random-init model; <i>after</i>: zero-shot after pre-training; <i>adapted</i>: the best "
            "adapter of the sweep.</p>" + table(header, body, left=2))
    if m.get("checks"):
        on = ", ".join(m.get("checked") or [])
        checks = [[esc(k), esc(on), check(k, bool(v))] for k, v in m["checks"].items()]
        html += "<h3>Checks</h3>" + table(["check", "on", "result"], checks, left=2)
    if rows:
        detail = [[esc(p), esc(d), esc(h), metric(f"{p}/{d}/{h}/n", r.get("n")),
                   *(metric(f"{p}/{d}/{h}/{k}", r.get(k)) for k in ("plcc", "krcc"))]
                  for (p, d, h), r in rows.items()]
        html += "<h3>Every result row</h3>" + table(["phase", "dataset", "head", "n", "PLCC", "KRCC"], detail, left=3)
    return html


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
    """SRCC within each distortion type (``attrs.dist_type``) on the evaluated side, per phase."""
    test = run.test_side
    if test is None or "dist_type" not in test.columns or not run.phase_scores:
        return None
    scored = {p: run.scored(p) for p in phases_of(run)}
    scored = {p: f for p, f in scored.items() if f is not None and "dist_type" in f.columns}
    html = ""
    for dataset, head in pairs(run):
        types = sorted(int(t) for t in test.loc[test["dataset"] == dataset, "dist_type"].dropna().unique())
        phases = [p for p, f in scored.items() if head in f.columns and (f["dataset"] == dataset).any()]
        if not types or not phases:
            continue
        names = distortion_names(run, dataset)
        series, body = {p: [] for p in phases}, []
        for t in types:
            n = int(((test["dataset"] == dataset) & (test["dist_type"] == t)).sum())
            cells = [str(t), esc(names.get(t, f"type {t}")), str(n)]
            for p in phases:
                f = scored[p]
                part = f[(f["dataset"] == dataset) & (f["dist_type"] == t) & f[head].notna()]
                value = safe_srcc(part[head], part["mos_norm"])
                series[p].append(value)
                cells.append(fmt(value))
            body.append(cells)
        labels = [f"{t} {names.get(t, '')}".strip() for t in types]
        html += (f"<h3>{esc(dataset)} / {esc(head)}</h3>"
                 + image(plots.grouped_bars(labels, series, "SRCC within type"), f"SRCC per distortion, {dataset}")
                 + table(["type", "distortion", "n", *(f"SRCC {p}" for p in phases)], body, left=2))
    if not html:
        return None
    return ('<p class="intro">Spearman correlation among the images of one distortion type (all levels and '
            "references of the evaluated side); – where it is undefined (fewer than 3 images or a constant side)."
            "</p>" + html)
