"""``uniqa report RUN_DIR [--out FILE] [--screenshot PNG]``: the HTML report of a stage's output folder (a demo
run, a ``uniqa score``, ``filter``, ``pretrain`` or ``tune`` output: what it is comes from its ``_summary.json``),
optionally rendered to a PNG by headless Chromium. It reads outputs and writes one file."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report",
                       help="write a self-contained HTML report of a run folder (demo, score, filter, pretrain, "
                            "tune)",
                       description="Write a self-contained HTML report (plots and thumbnails embedded, no network) "
                                   "of a stage's output folder, whose _summary.json says what it is: a `uniqa demo` "
                                   "run, a `uniqa score` output, a `uniqa filter` output (with the scores it "
                                   "filtered), a `uniqa pretrain` run or a `uniqa tune` sweep. Sections whose "
                                   "inputs are absent are left out.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder, local or s3://")
    p.add_argument("--out", default=None, help="HTML file to write (default RUN_DIR/report.html)")
    p.add_argument("--screenshot", default=None, metavar="PNG",
                   help="also render the report to this PNG with headless Chromium (must be on PATH)")
    p.add_argument("--window-size", default="1280x4000", metavar="WxH",
                   help="browser window of the screenshot, in pixels (default 1280x4000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from uniqa.report.build import build_report
    from uniqa.report.screenshot import parse_window, screenshot

    window = parse_window(args.window_size)  # before any work: a bad flag fails fast
    path = build_report(args.run_dir, args.out)
    print(path)
    if args.screenshot:
        print(screenshot(path, args.screenshot, window))
    return 0
