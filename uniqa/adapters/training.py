"""Adapter training on features, pure torch (METHOD §3): no Ray, no images, no model.

MSE against ``mos_norm``, Adam (lr 2e-4, no weight decay), cosine annealing stepped once per epoch, batch 8.
Epoch ``e`` trains on training view ``e % K`` of every image, shuffled with ``default_rng([seed, e])``; an image's
test score is the mean head score over its test views. The same loop runs on cached features and in the exact
mode (features re-encoded from re-cropped images every epoch): given the same views, the same weights.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from uniqa.adapters.head import LevelHead, encode_prompts
from uniqa.adapters.prompts import PromptSet, get_prompt_set
from uniqa.errors import UniqaError

TrainFeatures = Callable[[int, np.ndarray], torch.Tensor]  # (epoch, positions) -> features [len(positions), D]


@dataclass(frozen=True)
class Recipe:
    epochs: int = 20
    batch_size: int = 8
    lr: float = 2e-4
    weight_decay: float = 0.0
    hidden: int | None = None  # adapter bottleneck width (None: the head's default, D // 2)


@dataclass
class HeadTemplate:
    """What a head needs from the frozen model: its prompt embeddings and logit scale (computed once)."""

    prompt_set: PromptSet
    embeddings: torch.Tensor  # [G, 5, D]
    logit_scale: torch.Tensor
    model_name: str = ""
    model_checksum: str | None = None

    @classmethod
    def from_model(cls, model, tokenizer, prompt_set: str | PromptSet) -> HeadTemplate:
        from uniqa.models.factory import model_info

        prompt_set = get_prompt_set(prompt_set) if isinstance(prompt_set, str) else prompt_set
        info = model_info(model)
        return cls(prompt_set, encode_prompts(model, tokenizer, prompt_set).cpu(),
                   model.logit_scale.detach().float().cpu().clone(), info.name, info.checksum)

    def head(self, adapter: bool = True, seed: int = 0, hidden: int | None = None) -> LevelHead:
        """A fresh head; the adapter's initial weights come from ``seed`` (the caller's RNG is untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return LevelHead(self.embeddings, self.logit_scale, self.prompt_set, adapter=adapter, hidden=hidden,
                             model_name=self.model_name, model_checksum=self.model_checksum)


def correlations(pred: np.ndarray, mos: np.ndarray) -> dict[str, float]:
    """SRCC / PLCC / KRCC on raw predictions; NaN where undefined (constant predictions, < 3 points)."""
    from uniqa.evaluation.metrics import krcc, plcc, srcc

    out = {}
    for name, fn in (("srcc", srcc), ("plcc", plcc), ("krcc", krcc)):
        try:
            out[name] = fn(pred, mos)
        except UniqaError:
            out[name] = float("nan")
    return out


@torch.no_grad()
def predict(head: LevelHead, features: torch.Tensor) -> np.ndarray:
    """Per-image score: the mean head score over its views. ``features`` [N, V, D] -> [N]."""
    n, v, d = features.shape
    return head(features.reshape(n * v, d)).reshape(n, v).mean(dim=1).double().numpy()


@dataclass
class TrainResult:
    epoch: int  # chosen epoch (1-based); 0 when nothing was trained
    metrics: dict[str, dict[str, float]]  # eval set -> metrics at the chosen epoch
    state: dict[str, torch.Tensor]  # head weights at the chosen epoch
    history: list[dict] = field(default_factory=list)  # per epoch: loss and each eval set's metrics


def train_head(template: HeadTemplate, train_features: TrainFeatures, train_pos: np.ndarray, targets: np.ndarray,
               evals: dict[str, tuple[torch.Tensor, np.ndarray]], select: str, recipe: Recipe,
               seed: int, on_epoch: Callable[[dict], bool | None] | None = None) -> TrainResult:
    """Train a fresh adapter head on ``train_pos`` (positions into the feature source; ``targets`` their mos_norm)
    and evaluate every eval set (test features [N, V, D], mos) after each epoch; the epoch with the best SRCC on
    ``evals[select]`` is kept (the first best; the last epoch when SRCC is never defined). ``on_epoch`` (a hook for
    sweeps) gets each epoch's history row; returning True stops training there (the best epoch so far is kept)."""
    head = template.head(adapter=True, seed=seed, hidden=recipe.hidden)
    params = [p for p in head.parameters() if p.requires_grad]
    # fused: one kernel per step for all parameters (same update up to float rounding; at batch 8 the optimiser's
    # per-tensor overhead is a fifth of a cached epoch)
    opt = torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs)
    y = torch.as_tensor(targets, dtype=torch.float32)
    best, history = None, []
    for epoch in range(recipe.epochs):
        head.train()
        feats = train_features(epoch, train_pos).float()
        order = np.random.default_rng([seed, epoch]).permutation(len(train_pos))
        losses = []
        for start in range(0, len(order), recipe.batch_size):
            idx = torch.from_numpy(order[start : start + recipe.batch_size])
            loss = F.mse_loss(head(feats[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item() * len(idx))
        sched.step()
        head.eval()
        metrics = {name: correlations(predict(head, f), m) for name, (f, m) in evals.items()}
        history.append({"epoch": epoch + 1, "loss": sum(losses) / len(order),
                        **{f"{n}_{k}": v for n, mm in metrics.items() for k, v in mm.items()}})
        score = metrics[select]["srcc"]
        key = -np.inf if np.isnan(score) else score
        if best is None or key > best[0] or key == best[0] == -np.inf:
            best = (key, epoch + 1, metrics, copy.deepcopy(head.state_dict()))
        if on_epoch is not None and on_epoch(history[-1]):
            break
    _, epoch, metrics, state = best
    return TrainResult(epoch, metrics, state, history)


def cached_source(train: np.ndarray) -> TrainFeatures:
    """Cached training views [N, K, D]: epoch ``e`` takes view ``e % K`` of each image."""
    tensor = torch.from_numpy(train)

    def features(epoch: int, positions: np.ndarray) -> torch.Tensor:
        return tensor[torch.from_numpy(positions), epoch % tensor.shape[1]]

    return features
