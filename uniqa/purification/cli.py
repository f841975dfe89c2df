"""``uniqa purify``: keep the best K human comments per aesthetics image; rejected ones with a reason."""

from __future__ import annotations

from uniqa.stagecli import Arg, StageCommand

COMMAND = StageCommand(
    name="purify",
    help="purify human comments (AR + IR ranking, keep the best K; rejected ones with a reason)",
    inputs=(
        Arg("--manifest", "manifest with a comments column (e.g. AVA), local or s3://"),
        Arg("--captions", "caption folder from `uniqa caption` (the aesthetic captions)"),
    ),
    options=(
        Arg("--keep", "K: comments kept per image", key="keep", type=int),
        Arg("--embedder", "text embedder for the relevance rank: clip | bow", key="embedder.name"),
        Arg("--actors", "number of embedder actors", key="num_actors", type=int),
    ),
    description="Purify human comments (METHOD §1.4): clean (empty, non-linguistic, duplicate), rank by\n"
                "relevance to the image's aesthetic caption (AR) + length (IR), keep the best K under OUT/kept;\n"
                "rejected comments with their reason under OUT/rejected.",
)
