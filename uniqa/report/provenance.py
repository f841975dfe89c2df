"""The provenance section: for every stage of the run that checked its evaluated images against the pre-training
corpus of its model (:mod:`uniqa.provenance`; ``details.leak`` of ``uniqa adapt``, ``tune``, ``evaluate`` and
``features`` summaries), the record it used and the overlap it found. An overlap (a run given ``--allow-leak``) is
a red ``LEAKED`` line: those numbers are inflated."""

from __future__ import annotations

from uniqa import storage
from uniqa.provenance import UNKNOWN, leak_note
from uniqa.report.html import esc, fmt, table
from uniqa.report.load import RunFolder


def checked_stages(run: RunFolder) -> list[tuple[str, dict, dict]]:
    """(where, summary, leak) of the folder's own summary and, in a demo run, of each step's output folder."""
    folders = [("", run.summary)]
    for key in sorted((run.demo_summary or {}).get("paths") or {}):
        if storage.exists(run.path(key, "_summary.json")):
            folders.append((key, RunFolder(run.path(key)).summary))
    return [(where, s, s["details"]["leak"]) for where, s in folders
            if s and isinstance(s.get("details"), dict) and isinstance(s["details"].get("leak"), dict)]


def provenance(run: RunFolder) -> str | None:
    found = checked_stages(run)
    if not found:
        return None
    rows, lines = [], []
    for where, summary, leak in found:
        record = leak.get("provenance") or UNKNOWN
        rows.append([esc(summary.get("stage")), esc(where or "."), esc(record), fmt(leak.get("leaked")),
                     esc(", ".join(leak.get("examples") or []))])
        if leak.get("leaked"):
            lines.append(f'<p class="leak" data-leaked="{int(leak["leaked"])}">{esc(where or summary.get("stage"))}: '
                         f'{esc(leak_note(int(leak["leaked"]), "evaluated images are"))}</p>')
    intro = ('<p class="intro">Each stage that evaluates a model checked its test-side images against the image ids '
             'the model was pre-trained on (<code>corpus_ids.parquet</code> beside its weights). '
             f'"{UNKNOWN}": weights without that record.</p>')
    return intro + "".join(lines) + table(["stage", "output", "record", "leaked", "e.g."], rows, left=3)
