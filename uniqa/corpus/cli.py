"""``uniqa corpus``: captions + purified comments + level prompts -> (image, text) pair shards."""

from __future__ import annotations

from uniqa.stagecli import Arg, StageCommand

COMMAND = StageCommand(
    name="corpus",
    help="build the unified (image, text) corpus from captions, purified comments and level prompts",
    inputs=(
        Arg("--manifest", "manifest Parquet file/folder, local or s3:// (one per dataset)", multiple=True),
        Arg("--captions", "caption folder from `uniqa caption`", multiple=True),
        Arg("--purified", "purified comment folder from `uniqa purify` (its kept/ part is read)", multiple=True,
            required=False),
    ),
    options=(
        Arg("--caption-weight", "relative sampling weight of a caption", key="caption_weight", type=float),
        Arg("--comment-weight", "relative sampling weight of a purified comment", key="comment_weight", type=float),
        Arg("--level-prompt-weight", "relative sampling weight of the level-prompt text (default 0)",
            key="level_prompt_weight", type=float),
    ),
)
