"""The contrastive loss equals a hand-written symmetric InfoNCE (single worker), values and gradients, and across
two gloo workers it gathers negatives with gradients: their summed gradients equal the full-batch ones."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from uniqa.training.loss import contrastive_loss


def infonce_by_hand(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """-1/2N sum_i [log softmax_j(s <I_i, T_j>)_i + log softmax_j(s <T_i, I_j>)_i], written out."""
    n = image.shape[0]
    total = 0.0
    for i in range(n):
        sims_i2t = torch.stack([scale * torch.dot(image[i], text[j]) for j in range(n)])
        sims_t2i = torch.stack([scale * torch.dot(text[i], image[j]) for j in range(n)])
        total = total - (sims_i2t[i] - torch.logsumexp(sims_i2t, 0)) - (sims_t2i[i] - torch.logsumexp(sims_t2i, 0))
    return total / (2 * n)


def test_loss_and_gradients_match_hand_written_infonce():
    torch.manual_seed(0)
    image = F.normalize(torch.randn(6, 16), dim=-1).requires_grad_()
    text = F.normalize(torch.randn(6, 16), dim=-1).requires_grad_()
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)

    ours = contrastive_loss(image, text, log_scale.exp())
    ours.backward()
    grads = [t.grad.clone() for t in (image, text, log_scale)]
    for t in (image, text, log_scale):
        t.grad = None
    ref = infonce_by_hand(image, text, log_scale.exp())
    ref.backward()

    assert torch.allclose(ours, ref, atol=1e-5)
    for got, want in zip(grads, (image.grad, text.grad, log_scale.grad)):
        assert torch.allclose(got, want, atol=1e-5)


def test_matched_pairs_give_lower_loss_than_shuffled():
    torch.manual_seed(1)
    feats = F.normalize(torch.randn(8, 32), dim=-1)
    scale = torch.tensor(20.0)
    matched = contrastive_loss(feats, feats, scale)
    shuffled = contrastive_loss(feats, feats.roll(1, dims=0), scale)
    assert matched < 0.1 < math.log(8) < shuffled


def _features(n: int = 8, dim: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    image = F.normalize(torch.randn(n, dim, generator=g), dim=-1).requires_grad_()
    text = F.normalize(torch.randn(n, dim, generator=g), dim=-1).requires_grad_()
    return image, text, torch.tensor(math.log(1 / 0.07), requires_grad=True)


def _worker(rank: int, world_size: int, folder: str) -> None:
    """One rank: the full batch is built identically everywhere, each rank feeds its own rows to the loss."""
    image, text, log_scale = _features()
    rows = slice(rank * 4, rank * 4 + 4)
    loss = contrastive_loss(image[rows], text[rows], log_scale.exp(), rank=rank, world_size=world_size)
    loss.backward()
    torch.save({"loss": loss.detach(), "image": image.grad, "text": text.grad, "scale": log_scale.grad},
               f"{folder}/rank{rank}.pt")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_workers_gather_negatives_with_gradients(tmp_path):
    from gloo_ranks import run_two_ranks

    run_two_ranks(_worker, str(tmp_path), timeout_s=90)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    image, text, log_scale = _features()
    full = contrastive_loss(image, text, log_scale.exp())  # one worker, all 8 rows
    full.backward()
    # local loss: each rank averages over its own 4 rows against all 8, so the full loss is the ranks' mean. Two
    # ranks sum in another order than one process: equal up to 1e-5 (measured ~5e-7), not to the last bit
    assert torch.allclose((ranks[0]["loss"] + ranks[1]["loss"]) / 2, full.detach(), atol=1e-5)
    assert not torch.allclose(ranks[0]["loss"], full.detach(), atol=1e-3)  # a rank alone sees other negatives
    # gather_with_grad: a rank's rows also get the gradient of the other rank's loss terms
    for key, grad in (("image", image.grad), ("text", text.grad)):
        assert torch.count_nonzero(ranks[0][key][4:]) == 0 and torch.count_nonzero(ranks[0][key][:4]) > 0
        assert torch.allclose(ranks[0][key] + ranks[1][key], 2 * grad, atol=1e-5)
    assert torch.allclose(ranks[0]["scale"] + ranks[1]["scale"], 2 * log_scale.grad, atol=1e-5)
