"""The headline section: every number of ``metrics.json``, each carried by one ``data-metric`` element, with its
bootstrap interval where the run has one (runs from before intervals show an en dash): SRCC per phase with the
gains and a bar plot, the checks (point, interval and decision per dataset / head), then n, groups, PLCC and KRCC
of every result row."""

from __future__ import annotations

from uniqa.report import plots
from uniqa.report.evaluation import pairs, phases_of
from uniqa.report.html import check, esc, fmt, fmt_interval, image, interval, is_missing, metric, table
from uniqa.report.load import RunFolder

CLASSIC_GAIN = "adapted_over_best_classic"  # metrics.json's gain of the adapted head over the best classic metric


def gain_of(value: object) -> tuple[float | None, list | None]:
    """(point, [lo, hi] or None) of a gain entry: ``{"point", "ci"}``, or a bare number (runs before intervals)."""
    if isinstance(value, dict):
        return value.get("point"), value.get("ci")
    return value, None


def check_of(value: object) -> tuple[bool, dict, str]:
    """(passed, per dataset/head, rule) of a check: ``{"passed", "rule", "per"}``, or a bare bool."""
    if isinstance(value, dict):
        return bool(value.get("passed")), value.get("per") or {}, value.get("rule") or ""
    return bool(value), {}, ""


def with_interval(key: str, value: object, ci: object, signed: bool = False) -> str:
    """``value [lo, hi]``: ``key`` and ``key_lo`` / ``key_hi`` elements (the interval an en dash when absent)."""
    return f"{metric(key, value, signed)} {interval(f'{key}_lo', f'{key}_hi', ci)}"


def level_of(metrics: dict) -> str:
    return f"{(metrics.get('bootstrap') or {}).get('level', 0.95):.0%}"


def headline(run: RunFolder) -> str | None:
    """SRCC per phase with the gains (table and plot), the checks, then n / groups / PLCC / KRCC per result row."""
    m = run.metrics
    if not m or not (m.get("results") or m.get("zero_shot_gain")):
        return None
    rows = {(r["phase"], r["dataset"], r["head"]): r for r in m.get("results", [])}
    phases = [p for p in phases_of(run) if any(k[0] == p for k in rows)]
    split, side = run.split
    html = (f'<p class="intro">SRCC against <code>mos_norm</code> on the <b>{esc(side)}</b> side of '
            f"<b>{esc(split)}</b>, whose images never reach pre-training or adapter training. <i>classic</i>: classic "
            "no-reference metrics (NIQE, BRISQUE; no training, no model), the baselines; <i>before</i>: "
            "zero-shot, random-init model; <i>after</i>: zero-shot after pre-training; <i>adapted</i>: the best "
            f"adapter of the sweep. {bootstrap_note(m)}</p>" + srcc_table(run, rows, phases))
    if rows:
        html += srcc_plot(run, rows, phases)
    if m.get("checks"):
        html += "<h3>Checks</h3>" + checks_table(m)
    if rows:
        html += "<h3>Every result row</h3>" + detail_table(rows, level_of(m))
    return html


def bootstrap_note(m: dict) -> str:
    """What the intervals are (from metrics.json's ``bootstrap`` block); empty for runs without intervals."""
    boot = m.get("bootstrap")
    if not boot:
        return ""
    units = ", ".join(f"{esc(d)}: {esc(u)}s" for d, u in (boot.get("unit") or {}).items())
    return (f"[lo, hi]: {level_of(m)} cluster-bootstrap percentile intervals, {esc(boot.get('resamples'))} "
            f"resamples (seed {esc(boot.get('seed'))}) of whole units ({units}); the gains' intervals are paired: "
            "both phases on the same resamples of the rows both scored.")


def srcc_table(run: RunFolder, rows: dict, phases: list[str]) -> str:
    m = run.metrics
    level = level_of(m)
    zero_shot, adapter = m.get("zero_shot_gain", {}), m.get("adapter_gain", {})
    classic = m.get(CLASSIC_GAIN)  # runs from before the classic baselines have none
    header = ["dataset", "head", *(f"SRCC {p} [{level}]" for p in phases),
              f"zero-shot gain (after − before) [paired {level}]", f"adapter gain (adapted − after) [paired {level}]",
              *([f"adapted − best classic metric [paired {level}]"] if classic is not None else [])]
    body = []
    for dataset, head in pairs(run):
        key = f"{dataset}/{head}"
        cells = [esc(dataset), esc(head)]
        for p in phases:
            r = rows.get((p, dataset, head))
            cells.append(with_interval(f"{p}/{key}/srcc", r["srcc"], r.get("srcc_ci")) if r else "–")
        for name, gains in (("gain", zero_shot), ("adapter_gain", adapter)):
            cells.append(gain_cell(f"{name}/{key}", gains[key]) if key in gains else "–")
        if classic is not None:
            entry = classic.get(key)
            best = ((entry or {}).get("baseline") or "").split("/")[-1]
            cells.append(f"{gain_cell(f'{CLASSIC_GAIN}/{key}', entry)} (vs {esc(best)})" if best else "–")
        body.append(cells)
    return table(header, body, left=2)


def gain_cell(key: str, value: object) -> str:
    """A gain's point (``key``) and paired interval (``key/lo``, ``key/hi``)."""
    point, ci = gain_of(value)
    return f"{metric(key, point, signed=True)} {interval(f'{key}/lo', f'{key}/hi', ci)}"


def srcc_plot(run: RunFolder, rows: dict, phases: list[str]) -> str:
    """SRCC per dataset / head, a bar per phase, its interval as an error bar."""
    shown = [(d, h) for d, h in pairs(run) if any((p, d, h) in rows for p in phases)]
    series = {p: [_get(rows, p, d, h, "srcc") for d, h in shown] for p in phases}
    bars = {p: [_bounds(_get(rows, p, d, h, "srcc_ci")) for d, h in shown] for p in phases}
    uri = plots.grouped_bars([f"{d}/{h}" for d, h in shown], series, "SRCC", bars)
    return image(uri, "SRCC per phase with its bootstrap interval")


def _get(rows: dict, phase: str, dataset: str, head: str, name: str):
    value = (rows.get((phase, dataset, head)) or {}).get(name)
    return float("nan") if value is None and name == "srcc" else value


def _bounds(ci: object) -> tuple[float, float] | None:
    ok = isinstance(ci, (list, tuple)) and len(ci) == 2 and not any(is_missing(v) for v in ci)
    return (float(ci[0]), float(ci[1])) if ok else None


def checks_table(m: dict) -> str:
    """A row per check and dataset / head (point, interval, decision), then the check's overall decision."""
    body = []
    for name, value in m["checks"].items():
        passed, per, rule = check_of(value)
        on = ", ".join((value.get("on") if isinstance(value, dict) else None) or m.get("checked") or [])
        for key, entry in per.items():
            body.append([esc(name), esc(key), fmt(entry.get("point"), "+.3f"), fmt_interval(entry.get("ci"), "+.3f"),
                         check(f"{name}/{key}", bool(entry.get("passed")))])
        body.append([esc(name), f"all of {esc(on)}" + (f": {esc(rule)}" if rule else ""), "", "", check(name, passed)])
    return table(["check", "dataset / head", "point", f"interval [{level_of(m)}]", "decision"], body, left=2)


def detail_table(rows: dict, level: str) -> str:
    body = [[esc(p), esc(d), esc(h), metric(f"{p}/{d}/{h}/n", r.get("n")),
             metric(f"{p}/{d}/{h}/groups", r.get("groups")) if "groups" in r else "–",
             with_interval(f"{p}/{d}/{h}/plcc", r.get("plcc"), r.get("plcc_ci")),
             metric(f"{p}/{d}/{h}/krcc", r.get("krcc"))] for (p, d, h), r in rows.items()]
    return table(["phase", "dataset", "head", "n", "groups", f"PLCC [{level}]", "KRCC"], body, left=3)
