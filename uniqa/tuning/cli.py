"""``uniqa tune``: a Ray Tune sweep over adapter (or pre-training) hyperparameters, defined as data in
``tuning/<sweep>.yaml``."""

from __future__ import annotations

from uniqa.stagecli import Arg, StageCommand

COMMAND = StageCommand(
    name="tune",
    help="Ray Tune sweep over adapter / pre-training hyperparameters (ASHA on validation SRCC, resumable)",
    description=(
        "A sweep file (tuning/*.yaml) names the search space, scheduler, metric, mode, trials, concurrency and\n"
        "resources per trial. Adapter trials train on cached features (`uniqa features`; computed into\n"
        "OUT/features when --features is not given) of a split's train side and report validation SRCC (a part\n"
        "carved from train) every epoch; the test side is used only for the best trial. Pretrain trials each fit\n"
        "their own TorchTrainer and report the zero-shot SRCC of their checkpoint on a held-out split (the\n"
        "manifest's test side, refused if the corpus holds it) and their final loss. Rerunning the same command\n"
        "resumes (finished trials are not run again); a trial that errored leaves the sweep INCOMPLETE (exit 1)\n"
        "and is retried by the rerun.\n"
        "Writes OUT/results.{parquet,csv} (one row per trial), OUT/best.yaml, OUT/best/ (the best adapter:\n"
        "`uniqa score --heads quality=OUT/best`) and OUT/test.json."
    ),
    inputs=(
        Arg("--manifest", "manifest with mos_norm and split columns: adapter sweeps train on it; pretrain sweeps "
            "score each trial's zero-shot SRCC on its held-out test side (default: `manifest:` of --config)",
            required=False),
        Arg("--features", "adapter sweeps: feature cache of the manifest (default: computed into OUT/features)",
            required=False),
        Arg("--corpus", "pretrain sweeps: the `uniqa corpus` output (default: `corpus:` of --config)",
            required=False),
    ),
    options=(
        Arg("--samples", "trials to run (num_samples)", key="num_samples", type=int),
        Arg("--concurrency", "trials running at once (max_concurrent)", key="max_concurrent", type=int),
    ),
)
