"""``uniqa data sample`` as a stage: the embedded sample corpus (:func:`uniqa.data.sample.build_sample`) into a
folder, with its ``_summary.json``; a complete sample of the same seed is found done."""

from __future__ import annotations

from dataclasses import dataclass

from uniqa.data.sample import TEXT_FILES, build_sample, checksum


@dataclass(frozen=True)
class SampleConfig:
    seed: int = 0  # same seed, same files


def run_sample(out: str, cfg: SampleConfig = SampleConfig(), *, progress: bool = True, address: str | None = None):
    """The ``sample`` stage: :func:`build_sample` into ``out`` -> its :class:`~uniqa.stage.StageSummary` (the
    images made; ``details``: :func:`build_sample`'s summary). A sample of this seed that is already complete under
    ``out`` (its summary and its text files' checksum) is found done. Runs in this process (no Ray)."""
    from uniqa import stage, storage

    del progress, address
    identity = {"seed": cfg.seed}
    done = stage.finished_summary(out, "sample", identity)
    text_files = all(storage.exists(storage.join(out, f)) for f in TEXT_FILES)
    if done is not None and text_files and checksum(out, TEXT_FILES) == done.details["sha256_text"]:
        return done
    summary = build_sample(out, cfg.seed)
    images = summary["iqa_distorted_images"] + summary["iqa_references"] + summary["iaa_images"]
    return stage.StageSummary(stage="sample", inputs={}, output=out, rows_in=images, rows_out=images,
                              rows_written=images, seconds=summary["seconds"], unit="images",
                              config_fingerprint=stage.config_fingerprint(cfg),
                              details={**summary, "identity": identity}).write()
