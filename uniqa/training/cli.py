"""``uniqa pretrain``: contrastive pre-training of a CLIP model on a corpus of (image, text) pairs (Ray Train)."""

from __future__ import annotations

from uniqa.stagecli import Arg, StageCommand

COMMAND = StageCommand(
    name="pretrain",
    help="pre-train a quality/aesthetics-aware CLIP on a corpus with Ray Train (resumable)",
    config="uniqa.training.config:PretrainConfig",
    run="uniqa.training.run:run_pretrain",
    inputs=(Arg("--corpus", "corpus of (image, text) pairs, the `uniqa corpus` output (default: `corpus:` of "
                "--config)"),),
    options=(
        Arg("--model", "architecture (uniqa-small, ViT-B-16-quickgelu, ...) or checkpoint folder", key="model"),
        Arg("--pretrained", "initial weights (checkpoint / OpenAI-format .pt); default random init", key="pretrained"),
        Arg("--workers", "Ray Train workers", key="num_workers", type=int),
        Arg("--batch-size", "global batch (images per optimiser step)", key="batch_size", type=int),
        Arg("--steps", "optimiser steps (default: epochs x images / batch size)", key="steps", type=int),
        Arg("--epochs", "passes over the corpus images (when --steps is not given)", key="epochs", type=int),
        Arg("--gpu", "train on GPUs (bf16 autocast)", key="use_gpu", store_true=True),
    ),
)
