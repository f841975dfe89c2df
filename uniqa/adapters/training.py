"""Adapter training on features, pure torch (METHOD §3): no Ray, no images, no model.

MSE against ``mos_norm``, Adam (lr 2e-4, no weight decay), cosine annealing stepped once per epoch, batch 8.
Epoch ``e`` trains on training view ``e % K`` of every image, shuffled with ``default_rng([seed, e])``; an image's
test score is the mean head score over its test views. The head is evaluated at the end of every epoch, or, with
``Recipe.val_every``, after every ``val_every``-th optimiser step counted across epochs and once more at the end of
training (the reference code's ``val_freq``; evaluating changes no weight). The same loop runs on cached features
and in the exact mode (features re-encoded from re-cropped images every epoch): given the same views, the same
weights.
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
    val_every: int | None = None  # evaluate every N optimiser steps, counted across epochs (None: every epoch)

    def __post_init__(self):
        v = self.val_every
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise UniqaError(f"val_every must be a positive integer or None, got {v!r}")


@dataclass
class HeadTemplate:
    """What a head needs from the frozen model: its prompt embeddings and logit scale (computed once)."""

    prompt_set: PromptSet
    embeddings: torch.Tensor  # [G, 5, D]
    logit_scale: torch.Tensor
    model_name: str = ""
    model_checksum: str | None = None
    pos_embedding: bool = True  # the image tower ran with its positional embedding (recorded in the head's head.json)

    @classmethod
    def from_model(cls, model, tokenizer, prompt_set: str | PromptSet) -> HeadTemplate:
        from uniqa.models.factory import model_info

        prompt_set = get_prompt_set(prompt_set) if isinstance(prompt_set, str) else prompt_set
        info = model_info(model)
        return cls(prompt_set, encode_prompts(model, tokenizer, prompt_set).cpu(),
                   model.logit_scale.detach().float().cpu().clone(), info.name, info.checksum, info.pos_embedding)

    def head(self, adapter: bool = True, seed: int = 0, hidden: int | None = None) -> LevelHead:
        """A fresh head; the adapter's initial weights come from ``seed`` (the caller's RNG is untouched)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return LevelHead(self.embeddings, self.logit_scale, self.prompt_set, adapter=adapter, hidden=hidden,
                             model_name=self.model_name, model_checksum=self.model_checksum,
                             pos_embedding=self.pos_embedding)


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
    epoch: int  # epoch (1-based) in which the chosen evaluation ran; 0 when nothing was trained
    metrics: dict[str, dict[str, float]]  # eval set -> metrics at the chosen evaluation
    state: dict[str, torch.Tensor]  # head weights at the chosen evaluation
    history: list[dict] = field(default_factory=list)  # per evaluation: epoch, step, loss, each eval set's metrics
    step: int = 0  # optimiser steps taken at the chosen evaluation (across epochs); 0 when nothing was trained


class _Evaluations:
    """The evaluations of one training: history rows, and the first best state by ``evals[select]``'s SRCC."""

    def __init__(self, head: LevelHead, evals: dict, select: str, on_epoch: Callable[[dict], bool | None] | None):
        self.head, self.evals, self.select, self.on_epoch = head, evals, select, on_epoch
        self.history, self.best, self.losses, self.images = [], None, [], 0

    def add_loss(self, loss: float, images: int) -> None:
        self.losses.append(loss * images)
        self.images += images

    def __call__(self, epoch: int, step: int) -> bool:
        """Evaluate now: a history row (``loss``: the mean training loss per image since the previous row); keep
        the state if its SRCC is the best so far (the first best; the last when SRCC is never defined). Returns
        True when ``on_epoch`` asks to stop."""
        training = self.head.training
        self.head.eval()
        metrics = {name: correlations(predict(self.head, f), m) for name, (f, m) in self.evals.items()}
        self.head.train(training)
        self.history.append({"epoch": epoch, "step": step, "loss": sum(self.losses) / self.images,
                             **{f"{n}_{k}": v for n, mm in metrics.items() for k, v in mm.items()}})
        self.losses, self.images = [], 0
        score = metrics[self.select]["srcc"]
        key = -np.inf if np.isnan(score) else score
        if self.best is None or key > self.best[0] or key == self.best[0] == -np.inf:
            self.best = (key, epoch, step, metrics, copy.deepcopy(self.head.state_dict()))
        return bool(self.on_epoch is not None and self.on_epoch(self.history[-1]))

    def result(self) -> TrainResult:
        _, epoch, step, metrics, state = self.best
        return TrainResult(epoch, metrics, state, self.history, step)


def train_head(template: HeadTemplate, train_features: TrainFeatures, train_pos: np.ndarray, targets: np.ndarray,
               evals: dict[str, tuple[torch.Tensor, np.ndarray]], select: str, recipe: Recipe,
               seed: int, on_epoch: Callable[[dict], bool | None] | None = None) -> TrainResult:
    """Train a fresh adapter head on ``train_pos`` (positions into the feature source; ``targets`` their mos_norm)
    and evaluate every eval set (test features [N, V, D], mos) after each epoch, or with ``recipe.val_every`` after
    every ``val_every``-th optimiser step (counted across epochs, as the reference's ``current_iter % val_freq``)
    and at the end of training unless its last step was just evaluated (so a training shorter than ``val_every``
    steps is evaluated once, at its end; the reference validates at the end too). The evaluation with the best SRCC
    on ``evals[select]`` is kept (the first best; the last when SRCC is never defined). The learning rate follows
    the cosine once per epoch either way, as in the reference (its per-iteration scheduler call is commented out).
    ``on_epoch`` (a hook for sweeps) gets each history row, one per evaluation; returning True stops training there
    (the best evaluation so far is kept)."""
    head = template.head(adapter=True, seed=seed, hidden=recipe.hidden)
    params = [p for p in head.parameters() if p.requires_grad]
    # fused: one kernel per step for all parameters (same update up to float rounding; at batch 8 the optimiser's
    # per-tensor overhead is a fifth of a cached epoch)
    opt = torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs)
    y = torch.as_tensor(targets, dtype=torch.float32)
    every, step = recipe.val_every, 0
    evaluate = _Evaluations(head, evals, select, on_epoch)
    for epoch in range(1, recipe.epochs + 1):
        head.train()
        feats = train_features(epoch - 1, train_pos).float()
        order = np.random.default_rng([seed, epoch - 1]).permutation(len(train_pos))
        for start in range(0, len(order), recipe.batch_size):
            idx = torch.from_numpy(order[start : start + recipe.batch_size])
            loss = F.mse_loss(head(feats[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            evaluate.add_loss(loss.item(), len(idx))
            if every is not None and step % every == 0 and evaluate(epoch, step):
                return evaluate.result()
        sched.step()
        if every is None and evaluate(epoch, step):
            return evaluate.result()
    if not evaluate.history or evaluate.history[-1]["step"] != step:
        evaluate(recipe.epochs, step)
    return evaluate.result()


def cached_source(train: np.ndarray) -> TrainFeatures:
    """Cached training views [N, K, D]: epoch ``e`` takes view ``e % K`` of each image."""
    tensor = torch.from_numpy(train)

    def features(epoch: int, positions: np.ndarray) -> torch.Tensor:
        return tensor[torch.from_numpy(positions), epoch % tensor.shape[1]]

    return features
