"""``uniqa adapt``: train UniQA adapters and evaluate them under the paper's protocols (full, few-label,
zero-shot), on cached features by default."""

from __future__ import annotations

from uniqa.stagecli import Arg, StageCommand

COMMAND = StageCommand(
    name="adapt",
    help="train and evaluate adapters: full (10 splits), few-label (50/100/200 labels), zero-shot",
    description=(
        "The UniQA adapter recipe (MSE on mos_norm, Adam 2e-4, cosine per epoch, batch 8) on a frozen model.\n"
        "Trains on cached per-view features (`uniqa features`; computed into OUT/features when --features is\n"
        "not given) or, with --mode exact, re-crops and re-encodes the images every epoch. Reports SRCC / PLCC /\n"
        "KRCC per run and their median and mean +- std: the reference-style number (best epoch on the test\n"
        "split, as the reference code does) and a clean number (epoch chosen on a validation part of train).\n"
        "Writes OUT/results.{parquet,csv}, OUT/summary.{parquet,csv}, OUT/history.{parquet,csv} and\n"
        "OUT/adapters/<run>/ (for `uniqa score --heads quality=OUT/adapters/split_0`). A rerun skips the runs\n"
        "already finished (OUT/runs/<run>.json)."
    ),
    inputs=(
        Arg("--manifest", "manifest with mos_norm and split_0..split_9 (default: `manifest:` of --config)"),
        Arg("--features", "feature cache written by `uniqa features` with the same model and seed (default: "
            "computed into OUT/features)", required=False),
    ),
    options=(
        Arg("--model", "model name (e.g. uniqa-small, ViT-B-16-quickgelu) or checkpoint folder/file", key="model"),
        Arg("--pretrained", "weights for --model (checkpoint path or open_clip tag)", key="pretrained"),
        Arg("--head", "prompt family: quality | aesthetics", key="head"),
        Arg("--protocol", "full | few-label | zero-shot", key="protocol"),
        Arg("--epochs", "training epochs (20 for KonIQ, 50 for LIVE-C in the reference)", key="epochs", type=int),
        Arg("--mode", "cached (train on cached features) | exact (re-crop and re-encode every epoch)", key="mode"),
        Arg("--runner", "ray (runs as parallel Ray tasks) | local", key="runner"),
        Arg("--allow-leak", "go on when test-side images are in the model's pre-training corpus (its "
            "corpus_ids.parquet record); the overlap is recorded in _summary.json", key="allow_leak",
            store_true=True),
    ),
)
