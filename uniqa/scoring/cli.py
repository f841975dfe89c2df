"""``uniqa score``: quality and aesthetics (and any trained head) for a manifest, folder, prefix or list."""

from __future__ import annotations

from uniqa.stagecli import Arg, StageCommand, comma_list

COMMAND = StageCommand(
    name="score",
    help="score images for quality and aesthetics on Ray (exactly-once, resumable)",
    inputs=(
        Arg("--input", "manifest (Parquet file/folder), image folder, s3:// prefix, or .txt list of image URIs "
            "(default: `input:` of --config)"),
    ),
    options=(
        Arg("--model", "model name (e.g. ViT-B-16-quickgelu, uniqa-tiny) or checkpoint folder (not needed when "
            "every head is classic)", key="model"),
        Arg("--pretrained", "weights for --model (checkpoint file/folder or open_clip tag)", key="pretrained"),
        Arg("--heads", "comma-separated, one output column each: NAME (zero-shot prompt set: quality, aesthetics, "
            "quality-ensemble, ...), NAME=PROMPT_SET, or NAME=HEAD_FOLDER (a trained head: the folder save_head "
            "wrote, or its head.safetensors; a path, so ./quality for a folder in the working directory), or a "
            "classic metric niqe | brisque | piqe (from the decoded image, no model; the column is the negated "
            "value, higher = better, and NAME_raw the published one); default quality,aesthetics", key="heads",
            type=comma_list),
        Arg("--views", "view protocol: crops10 | five | full", key="views"),
        Arg("--embeddings", "also write the image embeddings (normalised mean over views; not adapter input: "
            "see `uniqa features`)", key="embeddings", store_true=True),
        Arg("--batch-size", "images per model actor call", key="batch_size", type=int),
        Arg("--actors", "number of model actors", key="num_actors", type=int),
    ),
)
