"""``uniqa evaluate``: SRCC / PLCC / KRCC of every score column against ``mos_norm``, per dataset and split."""

from __future__ import annotations

from uniqa.stagecli import Arg, StageCommand, comma_list

COMMAND = StageCommand(
    name="evaluate",
    help="SRCC / PLCC / KRCC of scores against mos_norm per dataset, head and split (Parquet + table)",
    description="Correlate every score column of --scores with mos_norm (higher is better for every dataset)\n"
                "on the test side of a split of --manifest, per dataset and head. Rows whose score carries an\n"
                "error or is null are excluded and counted. SRCC and PLCC come with a 95% cluster-bootstrap\n"
                "interval (quality datasets resample whole reference groups, aesthetics datasets single images;\n"
                "--set bootstrap.resamples=N, bootstrap.seed=S, bootstrap.level=L). Writes OUT/metrics.parquet and\n"
                "OUT/metrics.csv and prints the table (--quiet: the summary line only).",
    inputs=(
        Arg("--scores", "scores Parquet file/folder from `uniqa score` (local or s3://)"),
        Arg("--manifest", "manifest Parquet file/folder with mos_norm and split columns (local or s3://)"),
    ),
    options=(
        Arg("--split", "split column to evaluate on: split_0 .. split_9, or all (each of the ten; default split_0)",
            key="split"),
        Arg("--side", "side of the split: test (default), val or train", key="side"),
        Arg("--heads", "comma-separated score columns (default: every score column of --scores)", key="heads",
            type=comma_list),
        Arg("--allow-leak", "go on when evaluated images are in the pre-training corpus of the model that scored "
            "them (its corpus_ids.parquet record); the overlap is recorded in _summary.json", key="allow_leak",
            store_true=True),
    ),
    ray=False,  # one process, no Ray (pipelines/evaluate.py runs it as a cluster job beside the others)
)
