"""``build_report(run_dir)``: one self-contained HTML file from whatever a run folder holds.

Every section is a function ``(RunFolder) -> html | None``; None (its inputs are absent) leaves the section out,
and an input that is there but unreadable (:class:`UniqaError`) becomes a note in its section. A folder that
yields no section at all is an error naming it.

Every number of ``metrics.json`` on the page is one element (each key once) whose text is the value as ``{:.3f}``
(``n`` and ``groups`` as integers, a null as ``nan``): ``data-metric="{phase}/{dataset}/{head}/{srcc|plcc|krcc|n|
groups}"`` per result row and ``.../{srcc|plcc}_lo``, ``..._hi`` for its interval; ``data-metric="gain/{dataset}/
{head}"`` per ``zero_shot_gain`` entry and ``adapter_gain/{dataset}/{head}`` per ``adapter_gain`` entry, each with
``.../lo`` and ``.../hi`` for its paired interval. An interval the run does not have (a run from before intervals,
an undefined one) is an en dash, with no element. Each check is ``data-check="{name}"`` with
``data-value="true|false"``, and each of its dataset / head decisions ``data-check="{name}/{dataset}/{head}"``.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable

from uniqa import __version__, storage
from uniqa.errors import UniqaError
from uniqa.report import evaluation, headline, provenance, run_info, samples, scoring, training
from uniqa.report.html import Section, esc, note, page
from uniqa.report.load import RunFolder

REPORT_DIR, REPORT_FILE = "report", "report.html"  # RUN_DIR/report/report.html by default

# (anchor, title, builder), in page order.
SECTIONS: tuple[tuple[str, str, Callable[[RunFolder], str | None]], ...] = (
    ("headline", "Headline: SRCC before → after pre-training, adapted, beside classic metrics", headline.headline),
    ("provenance", "Provenance: evaluated images vs the pre-training corpus", provenance.provenance),
    ("scatter", "Predicted score vs MOS", evaluation.scatter),
    ("distortions", "SRCC per distortion type", evaluation.by_distortion),
    ("pretraining", "Pre-training", training.pretraining),
    ("sweeps", "Sweeps", training.sweeps),
    ("gallery", "Gallery (held-out images)", samples.test_gallery),
    ("curation", "Curation (uniqa filter)", scoring.curation),
    ("scoring", "Scoring run", scoring.summary),
    ("histograms", "Score histograms", scoring.histograms),
    ("extremes", "Best and worst images", scoring.extremes),
    ("errors", "Rows with errors", scoring.errors),
    ("stages", "Stages", run_info.stages),
    ("configs", "Configs", run_info.configs),
)
# The stages whose outputs the report shows, and the page header's name for each (another stage's output gets the
# sections its summary feeds, e.g. an evaluation's leak check).
KINDS = {"demo": "demo run", "score": "scoring run", "filter": "curation run", "pretrain": "pre-training run",
         "tune": "sweep"}


def render(run: RunFolder) -> list[Section]:
    """The sections ``run`` has inputs for."""
    out = []
    for key, title, build in SECTIONS:
        try:
            body = build(run)
        except UniqaError as e:
            body = note(f"this section could not be built: {e}")
        if body is not None:
            out.append(Section(key, title, body))
    return out


def kind(run: RunFolder) -> str:
    """What the folder is, for the page header: its ``_summary.json``'s stage."""
    return KINDS.get(run.stage, f"{run.stage} run")


def run_folder(run_dir: str) -> RunFolder:
    """``run_dir`` as the report reads it: a folder with a stage's ``_summary.json``, or one error naming it."""
    if not storage.exists(run_dir) or not storage.is_dir(run_dir):
        raise UniqaError(f"run folder {run_dir} does not exist (or is not a folder)")
    run = RunFolder(run_dir)
    if run.stage is None:  # (a malformed _summary.json is already an error naming it)
        raise UniqaError(f"run folder {run_dir} has no _summary.json: not a stage's output (the report reads "
                         f"{', '.join(f'`uniqa {k}`' for k in KINDS)} outputs)")
    return run


def build_report(run_dir: str, out: str | None = None) -> str:
    """Write the report of ``run_dir`` to the HTML file ``out`` (default ``RUN_DIR/report/report.html``, where
    ``uniqa report RUN_DIR`` writes it); returns its path."""
    run = run_folder(run_dir)
    sections = render(run)
    if not sections:
        raise UniqaError(f"run folder {run_dir} (stage {run.stage}) holds nothing the report shows; it reads "
                         f"{', '.join(f'`uniqa {k}`' for k in KINDS)} outputs")
    shown = storage.absolute(run_dir)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = f"{esc(kind(run))} · <code>{esc(shown)}</code> · uniqa {esc(__version__)} · {when}"
    out = out or storage.join(run_dir, REPORT_DIR, REPORT_FILE)
    storage.write_bytes(out, page(f"uniqa report: {os.path.basename(shown.rstrip('/'))}", subtitle,
                                  sections).encode("utf-8"))
    return out
