"""``uniqa caption``: caption a manifest's images with a backend (attributes | openai | vllm); resumable."""

from __future__ import annotations

from uniqa.stagecli import Arg, StageCommand

COMMAND = StageCommand(
    name="caption",
    help="caption images (quality / aesthetics) into Parquet on Ray (exactly-once, resumable)",
    description="Caption a manifest's images into Parquet files under --out, one row per image of the configured "
                "tasks. Rerun the same command to resume: images already captioned are skipped.",
    inputs=(Arg("--manifest", "manifest Parquet file or folder, local or s3:// (default: `manifest:` of --config)"),),
    options=(
        Arg("--backend", "captioner: attributes (offline CPU, default) | openai | vllm", key="backend"),
        Arg("--limit", "caption at most N not-yet-captioned images in this run (exit 1: rerun to continue)",
            key="limit", type=int, metavar="N"),
    ),
)
