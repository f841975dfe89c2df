"""``uniqa data sample`` as a stage: the embedded sample corpus (:func:`uniqa.data.sample.build_sample`) into a
folder, with its ``_summary.json``; a complete sample of the same seed is found done (its summary, and the
checksum of its text files: :func:`output_rows`)."""

from __future__ import annotations

from dataclasses import dataclass

from uniqa.data.sample import TEXT_FILES, build_sample, checksum
from uniqa.stage import Outcome, Plan, Run, StageSummary


@dataclass(frozen=True)
class SampleConfig:
    seed: int = 0  # same seed, same files


def preflight(out: str, cfg: SampleConfig) -> Plan:
    """Nothing to check: the sample is made here. A sample is keyed by its seed."""
    return Plan(inputs={}, identity={"seed": cfg.seed}, resume="whole")


def work(plan: Plan, out: str, cfg: SampleConfig, run: Run) -> Outcome:
    """:func:`build_sample` into ``out`` -> the images made; ``details``: :func:`build_sample`'s summary. Runs in
    this process (no Ray)."""
    summary = build_sample(out, cfg.seed)
    images = summary["iqa_distorted_images"] + summary["iqa_references"] + summary["iaa_images"]
    return Outcome(rows_in=images, rows_out=images, rows_written=images, unit="images", details=summary)


def output_rows(out: str) -> int:
    """The images a finished sample under ``out`` holds, while its text files still have the checksum its summary
    recorded (0 otherwise: it is made again)."""
    from uniqa import storage
    from uniqa.stage import read_summary

    if not all(storage.exists(storage.join(out, f)) for f in TEXT_FILES):
        return 0
    record = read_summary(out)
    return record["rows_out"] if checksum(out, TEXT_FILES) == record["details"].get("sha256_text") else 0


def run_sample(out: str, cfg: SampleConfig = SampleConfig(), *, progress: bool = True,
               address: str | None = None) -> StageSummary:
    """The ``sample`` stage into ``out`` (:func:`uniqa.executor.execute`)."""
    from uniqa.executor import execute

    return execute("sample", [], out, cfg, progress=progress, address=address)
