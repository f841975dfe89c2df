"""Sections of a ``uniqa score`` output on its own: the run's summary numbers, a score histogram per head, the
best and worst images per head, and the rows that carry an ``error`` (also shown for a demo run's scores when
any of them failed); for a ``uniqa filter`` output, its rule, thresholds and histograms, then the same sections for
the scores it filtered."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from uniqa import storage
from uniqa.report import gallery, plots
from uniqa.report.html import data_uri, esc, fmt, image, note, table
from uniqa.report.load import RunFolder, head_columns

EXTREMES = 6  # best and worst images shown per head
GROUPS_SHOWN = 50  # threshold rows of a per-group filter
ERRORS_SHOWN = 200


def _usable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["error"].isna()] if "error" in frame.columns else frame


def summary(run: RunFolder) -> str | None:
    """The stage summary of the scoring run, with the score columns' spread."""
    frame, s = run.score_run, run.score_summary
    if frame is None:
        return None
    details = s.get("details", {})
    facts = [("input", s.get("inputs", {}).get("input")), ("input kind", s.get("inputs", {}).get("input_kind")),
             ("rows in", s.get("rows_in")), ("rows out", s.get("rows_out")),
             ("rows written by the last call", s.get("rows_written")), ("rows with errors", s.get("rows_with_errors")),
             ("rows missing", s.get("rows_missing")), ("complete", s.get("complete")),
             ("seconds", s.get("seconds")), ("images / s", s.get("rate")),
             ("model checksum", details.get("model_checksum")), ("score rows read", len(frame))]
    html = table(["", "value"], [[esc(k), fmt(v, ".4g")] for k, v in facts if v is not None], left=2)
    usable = _usable(frame)
    rows = []
    for head in head_columns(frame):
        v = usable[head].to_numpy(float)
        v = v[np.isfinite(v)]
        stats = (v.min(), np.median(v), v.mean(), v.max()) if len(v) else (None,) * 4
        rows.append([esc(head), str(len(v)), *(fmt(x) for x in stats)])
    return html + "<h3>Score columns</h3>" + table(["head", "scored", "min", "median", "mean", "max"], rows)


def curation(run: RunFolder) -> str | None:
    """A ``uniqa filter`` output: counts, the rule, the thresholds per group, why rows were rejected, and its
    histograms with the thresholds drawn."""
    s = run.curation
    if s is None:
        return None
    d, inputs = s.get("details", {}), s.get("inputs", {})
    q = d.get("quantiles") or {}
    rule = ", ".join(f"{k} {v}" for k, v in (d.get("rule") or {}).items())
    facts = [("scores", inputs.get("scores")), ("manifest", inputs.get("manifest")), ("rows in", s.get("rows_in")),
             ("kept", d.get("kept")), ("rejected", d.get("rejected")), ("rows with errors", s.get("rows_with_errors")),
             ("complete", s.get("complete")), ("rule", rule or None),
             ("quantiles", f"{q.get('method')}, rank error {fmt(q.get('rank_error'), '.4f')} at "
                           f"{fmt(q.get('confidence'), '.2f')} confidence" if q else None),
             ("kept rows", d.get("kept_out")), ("rejected rows", d.get("rejected_out"))]
    html = table(["", "value"], [[esc(k), fmt(v, ".4g")] for k, v in facts if v is not None], left=2)
    rows = [[esc(group), esc(column), esc(op), fmt(value, ".4g")]
            for group, conditions in (d.get("thresholds") or {}).items() for column, op, value in conditions]
    if rows:
        more = f"<p>… and {len(rows) - GROUPS_SHOWN} more.</p>" if len(rows) > GROUPS_SHOWN else ""
        html += ("<h3>Thresholds used (per group; * = every row)</h3>"
                 + table(["group", "column", "", "threshold"], rows[:GROUPS_SHOWN], left=3) + more)
    reasons = sorted((d.get("rejected_by_reason") or {}).items(), key=lambda kv: -kv[1])
    if reasons:
        html += "<h3>Why rows were rejected</h3>" + table(["reason", "rows"], [[esc(r), str(n)] for r, n in reasons])
    figure = run.path(os.path.basename(d.get("histograms") or "histograms.png"))
    if storage.exists(figure):
        uri = data_uri(storage.read_bytes(figure), "image/png")
        html += "<h3>Score histograms with the thresholds</h3>" + image(uri, "filter histograms")
    if run.scores_folder is None:
        html += note(f"the scores it filtered ({inputs.get('scores')}) are not there: their sections are left out")
    return html


def histograms(run: RunFolder) -> str | None:
    frame = run.score_run
    if frame is None or not head_columns(frame):
        return None
    usable = _usable(frame)
    values = {h: usable[h].to_numpy(float) for h in head_columns(frame)}
    return image(plots.histograms(values), "score histograms")


def _cell(row: dict, heads: list[str]) -> gallery.Cell:
    return gallery.Cell(row["image_id"], row.get("image_uri"), [(h, fmt(row.get(h))) for h in heads])


def extremes(run: RunFolder) -> str | None:
    """Per head, the ``EXTREMES`` highest- and lowest-scored images."""
    frame = run.score_run
    if frame is None or not head_columns(frame):
        return None
    heads, usable = head_columns(frame), _usable(frame)
    html = ""
    for head in heads:
        ranked = usable[np.isfinite(usable[head].to_numpy(float))].sort_values([head, "image_id"])
        if ranked.empty:
            continue
        for label, part in (("best", ranked.iloc[::-1][:EXTREMES]), ("worst", ranked.iloc[:EXTREMES])):
            html += (f"<h3>{esc(head)}: {label} {len(part)}</h3>"
                     + gallery.render([_cell(r, heads) for r in part.to_dict("records")]))
    return html or None


def errors(run: RunFolder) -> str | None:
    """The rows whose ``error`` is set: always for a scoring run, for a demo run's phases only when there are any."""
    parts = {"": run.score_run} if run.score_run is not None else dict(run.phase_scores)
    failed = [(name, f[f["error"].notna()]) for name, f in parts.items() if f is not None and "error" in f.columns]
    total = sum(len(f) for _, f in failed)
    if run.score_run is None and total == 0:
        return None
    if total == 0:
        return "<p>No row carries an error: every image was scored.</p>"
    phase = run.score_run is None
    rows = [[*([esc(name)] if phase else []), esc(r["image_id"]), esc(r["error"])]
            for name, f in failed for r in f.to_dict("records")]
    more = f"<p>… and {total - ERRORS_SHOWN} more.</p>" if total > ERRORS_SHOWN else ""
    return (f"<p>{total} row(s) could not be scored.</p>"
            + table([*(["phase"] if phase else []), "image_id", "error"], rows[:ERRORS_SHOWN], left=3) + more)
