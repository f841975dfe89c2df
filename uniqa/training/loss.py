"""The pre-training loss (METHOD §2): symmetric InfoNCE, negatives gathered across all workers."""

from __future__ import annotations

import warnings
from functools import lru_cache

import torch

# torch.distributed.nn's collectives bind the default process group as a default argument when first imported:
# imported inside a group, they keep using that group after it is destroyed (a second group in the same process,
# as in the tests, then hangs). Imported here, before any group exists, they look the group up at each call.
import torch.distributed.nn  # noqa: F401, E402


@lru_cache(maxsize=8)
def _clip_loss(rank: int, world_size: int):
    from open_clip.loss import ClipLoss

    # local_loss: each worker scores its own rows against everyone's (same gradient, less memory);
    # gather_with_grad: gradients flow back through the gathered features to the worker that made them.
    return ClipLoss(local_loss=True, gather_with_grad=True, rank=rank, world_size=world_size)


def contrastive_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    rank: int = 0,
    world_size: int = 1,
) -> torch.Tensor:
    """Mean of image->text and text->image cross-entropy over this worker's [B, D] features.

    Features are L2-normalised and ``logit_scale`` is the multiplier ``exp(model.logit_scale)``, as
    open_clip's ``CLIP.forward`` returns them. With ``world_size > 1`` a ``torch.distributed`` process
    group must be running; every rank's features serve as negatives.
    """
    with warnings.catch_warnings():  # open_clip's gather uses torch.distributed.nn.all_gather: one warning a step
        warnings.filterwarnings("ignore", message=".*all_gather is deprecated.*", category=FutureWarning)
        return _clip_loss(rank, world_size)(image_features, text_features, logit_scale)
