"""The ``report`` stage: a run folder -> ``OUT/report.html`` (:func:`uniqa.report.build.build_report`), and with
``screenshot`` ``OUT/report.png`` (headless Chromium). Recomputed every run (the page is small and dated); runs
in this process, without Ray."""

from __future__ import annotations

from dataclasses import dataclass

from uniqa import storage
from uniqa.report.build import REPORT_FILE, run_folder
from uniqa.report.screenshot import WINDOW, parse_window
from uniqa.stage import Outcome, Plan, Run, StageSummary

SCREENSHOT_FILE = "report.png"


@dataclass(frozen=True)
class ReportConfig:
    screenshot: bool = False  # also OUT/report.png (headless Chromium on PATH)
    window_size: str = f"{WINDOW[0]}x{WINDOW[1]}"  # the screenshot's browser window, WxH pixels

    def __post_init__(self):
        parse_window(self.window_size)  # a bad size fails with the config, before any work


@dataclass(kw_only=True)
class ReportPlan(Plan):
    stage: str  # what the run folder holds (its _summary.json)


def preflight(run_dir: str, out: str, cfg: ReportConfig) -> ReportPlan:
    """The run folder exists and holds a stage's ``_summary.json``; the screenshot, when asked for, has a browser
    and writes a local file."""
    from uniqa.errors import UniqaError

    run = run_folder(run_dir)
    if cfg.screenshot and storage.is_s3(out):
        raise UniqaError(f"--screenshot renders a local file; --out {out} is on S3 (write the report locally)")
    if cfg.screenshot:
        from uniqa.report.screenshot import find_browser

        find_browser()  # none on PATH: one error line, nothing written
    return ReportPlan(inputs={"run_dir": run_dir}, resume="never", stage=run.stage)


def work(plan: ReportPlan, out: str, cfg: ReportConfig, run: Run) -> Outcome:
    """Write the page (and its screenshot) -> one report; ``details``: the files and the stage reported on."""
    from uniqa.report.build import build_report
    from uniqa.report.screenshot import screenshot

    html = build_report(plan.inputs["run_dir"], storage.join(out, REPORT_FILE))
    png = screenshot(html, storage.join(out, SCREENSHOT_FILE), parse_window(cfg.window_size)) if cfg.screenshot \
        else None
    return Outcome(rows_in=1, rows_out=1, rows_written=1, unit="reports",
                   details={"html": html, "png": png, "reported_stage": plan.stage})


def run_report(run_dir: str, out: str | None = None, cfg: ReportConfig = ReportConfig(), *,
               progress: bool = True, address: str | None = None) -> StageSummary:
    """The report of ``run_dir`` into ``out`` (default ``RUN_DIR/report``; :func:`uniqa.executor.execute`)."""
    from uniqa.executor import execute
    from uniqa.report.build import REPORT_DIR

    out = out or storage.join(run_dir, REPORT_DIR)
    return execute("report", [run_dir], out, cfg, progress=progress, address=address)
