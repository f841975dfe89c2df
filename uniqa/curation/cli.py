"""``uniqa filter``: keep the images whose scores pass a rule; kept / rejected manifests, thresholds, histograms."""

from __future__ import annotations

from uniqa.stagecli import Arg, StageCommand

COMMAND = StageCommand(
    name="filter",
    help="keep the images whose scores pass a rule (--where EXPR or --top-fraction F --by COL [--group-by G])",
    description=(
        "Keep the images whose scores pass a rule; write OUT/kept (a manifest other stages read), OUT/rejected (with\n"
        "the reason), OUT/_summary.json (counts, thresholds per group, quantile error bound) and OUT/histograms.png.\n"
        "Rows with a scoring error or a null score are always rejected.\n\n"
        "  uniqa filter --scores runs/scores --out runs/curated --where 'quality >= 0.6 and aesthetics >= 0.5'\n"
        "  uniqa filter --scores S --manifest M --out OUT --top-fraction 0.3 --by quality --group-by dataset"
    ),
    inputs=(
        Arg("--scores", "scores folder from `uniqa score` (Parquet), local or s3:// (default: `scores:` of --config)"),
        Arg("--manifest", "optional manifest joined on image_id: kept rows carry its columns, and --group-by may "
            "name one of them (e.g. dataset)", required=False),
    ),
    options=(
        Arg("--where", "rule over score columns: comparisons (< <= > >= == !=) with numbers, and / or / not, "
            "parentheses, e.g. \"quality >= 0.6 and aesthetics >= 0.5\"", key="where", metavar="EXPR"),
        Arg("--top-fraction", "keep this share (0, 1] of rows with the highest --by score (per group with "
            "--group-by)", key="top_fraction", type=float, metavar="F"),
        Arg("--by", "score column --top-fraction ranks by", key="by", metavar="COLUMN"),
        Arg("--group-by", "one threshold per group: dataset | folder (parent folder of image_uri) | COLUMN of the "
            "manifest or the scores", key="group_by", metavar="GROUP"),
    ),
)
