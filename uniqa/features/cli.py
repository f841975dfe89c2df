"""``uniqa features``: per-view features of a frozen model, cached for adapter training (``uniqa adapt``)."""

from __future__ import annotations

from uniqa.stagecli import Arg, StageCommand

COMMAND = StageCommand(
    name="features",
    help="cache a frozen model's per-view image features for adapter training (exactly-once, resumable)",
    description=(
        "Run the frozen image encoder once over K seeded training views per image (horizontal flip + random\n"
        "crop at the model's input size) and the test views (10 random crops, seeded per image), and write the\n"
        "un-normalised features, one row per view, keyed by model checksum, view protocol and seed.\n"
        "`uniqa adapt` trains on them. (`uniqa score --embeddings` writes something else: a normalised mean\n"
        "over the test views, not adapter input.)\n"
        "A manifest row's decode_size (SPAQ: 448) resizes its image first; --set decode_size=N does so for every\n"
        "row. The manifest's test side (split_* = test) is checked against the model's pre-training record."
    ),
    inputs=(Arg("--manifest", "manifest (Parquet file/folder; default: `manifest:` of --config)"),),
    options=(
        Arg("--model", "model name (e.g. uniqa-small, ViT-B-16-quickgelu) or checkpoint folder/file", key="model"),
        Arg("--pretrained", "weights for --model (checkpoint path or open_clip tag)", key="pretrained"),
        Arg("--train-views", "K training views per image (adapter epoch e uses view e %% K)", key="train_views",
            type=int),
        Arg("--test-views", "test view protocol: crops10 | five | full", key="test_views"),
        Arg("--seed", "run seed (combined with each image_id for its crops)", key="seed", type=int),
        Arg("--batch-size", "images per model actor call", key="batch_size", type=int),
        Arg("--actors", "number of model actors", key="num_actors", type=int),
        Arg("--allow-leak", "go on when test-side images are in the model's pre-training corpus (recorded in "
            "_summary.json)", key="allow_leak", store_true=True),
    ),
)
