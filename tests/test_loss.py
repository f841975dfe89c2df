"""The contrastive loss equals a hand-written symmetric InfoNCE (single worker), values and gradients."""

from __future__ import annotations

import math

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
