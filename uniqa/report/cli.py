"""``uniqa report RUN_DIR [--out DIR] [--screenshot] [--window-size WxH]``: the HTML report of a stage's output
folder (a demo run, a ``uniqa score``, ``filter``, ``pretrain`` or ``tune`` output: what it is comes from its
``_summary.json``), as a stage (:mod:`uniqa.report.run`): ``OUT/report.html`` (default OUT: ``RUN_DIR/report``),
optionally ``OUT/report.png`` rendered by headless Chromium, and ``OUT/_summary.json``."""

from __future__ import annotations

from uniqa.stagecli import Arg, StageCommand

COMMAND = StageCommand(
    name="report",
    help="write a self-contained HTML report of a run folder (demo, score, filter, pretrain, tune)",
    description="Write a self-contained HTML report (plots and thumbnails embedded, no network) of a stage's\n"
                "output folder, whose _summary.json says what it is: a `uniqa demo` run, a `uniqa score` output, a\n"
                "`uniqa filter` output (with the scores it filtered), a `uniqa pretrain` run or a `uniqa tune`\n"
                "sweep. Sections whose inputs are absent are left out. Writes OUT/report.html (OUT defaults to\n"
                "RUN_DIR/report), OUT/report.png with --screenshot, and OUT/_summary.json; runs in this process.",
    inputs=(Arg("--run-dir", "the run folder, local or s3:// (default: `run_dir:` of --config)", positional=True),),
    options=(
        Arg("--screenshot", "also render the report to OUT/report.png with headless Chromium (must be on PATH)",
            key="screenshot", store_true=True),
        Arg("--window-size", "browser window of the screenshot, in pixels (default 1280x4000)", key="window_size",
            metavar="WxH"),
    ),
    ray=False,
    default_out="report",
)
