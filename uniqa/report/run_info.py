"""Sections about the run itself: the stages a demo ran (``demo_summary.json``) and the configs it passed them
(``configs.json``)."""

from __future__ import annotations

import json

from uniqa.report.html import esc, fmt, pre, table
from uniqa.report.load import RunFolder

STAGE_COLUMNS = ("stage", "output", "rows_in", "rows_out", "rows_with_errors", "rows_dropped", "seconds")


def stages(run: RunFolder) -> str | None:
    """One row per stage summary of ``demo_summary.json``, with their summed time."""
    demo = run.demo_summary
    if not demo or not demo.get("stages"):
        return None
    rows = [[fmt(s.get(c), ".1f") for c in STAGE_COLUMNS] for s in demo["stages"]]
    total = sum(float(s.get("seconds") or 0) for s in demo["stages"])
    text = f"<p>Sum of the stages' seconds: {total:.1f} s"
    if demo.get("seconds") is not None:  # a rerun resumes finished stages, so its own time can be much shorter
        text += f"; the demo call that wrote this summary took {fmt(demo['seconds'], '.1f')} s"
    return table([c.replace("_", " ") for c in STAGE_COLUMNS], rows, left=2) + text + ".</p>"


def configs(run: RunFolder) -> str | None:
    """Each step's config as the run passed it, in ``<pre>`` blocks."""
    found = run.configs
    if not found:
        return None
    if not isinstance(found, dict):
        return pre(json.dumps(found, indent=2, default=str))
    return "".join(f"<h3>{esc(step)}</h3>" + pre(json.dumps(cfg, indent=2, default=str))
                   for step, cfg in found.items())
