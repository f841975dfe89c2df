"""``uniqa pretrain``: contrastive pre-training of a CLIP model on a corpus of (image, text) pairs (Ray Train);
``uniqa init``: the weights it starts from, as a checkpoint folder."""

from __future__ import annotations

from uniqa.stagecli import Arg, StageCommand

COMMAND = StageCommand(
    name="pretrain",
    help="pre-train a quality/aesthetics-aware CLIP on a corpus with Ray Train (resumable)",
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


INIT = StageCommand(
    name="init",
    help="write the random-init weights a pre-training run starts from (a checkpoint folder to score)",
    description="Write the exact weights `uniqa pretrain` with the same config starts from (the training loop's\n"
                "build_model: the model's seeded random init, or --pretrained) to OUT as a checkpoint folder\n"
                "(`uniqa score --model OUT`: zero-shot before pre-training). Runs in this process, no Ray.",
    options=(
        Arg("--model", "architecture (uniqa-small, ViT-B-16-quickgelu, ...) or checkpoint folder", key="model"),
        Arg("--pretrained", "initial weights (checkpoint / OpenAI-format .pt); default random init", key="pretrained"),
        Arg("--seed", "seed of the random init", key="seed", type=int),
    ),
    ray=False,
)
