"""The training loop (nanoGPT-shaped: batch -> loss -> step -> report), free of Ray.

:func:`train` runs on every worker; what differs between a Ray Train worker and a plain process (rank,
device, DDP wrapping, how a checkpoint is reported, the batch stream) comes in a :class:`Worker`.
A checkpoint is a folder: ``model.safetensors`` (weights) + ``train_state.pt`` (optimizer state, step,
sampler keys (the ``order`` of the last row each rank trained on), RNG; read back with
``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from uniqa import storage
from uniqa.runtime import use_policy_threads
from uniqa.training.config import PretrainConfig
from uniqa.training.ingest import write_resume_keys
from uniqa.training.loss import contrastive_loss
from uniqa.training.metrics import MetricsLog

WEIGHTS = "model.safetensors"
STATE = "train_state.pt"
FINAL = "final"


@dataclass(frozen=True)
class Plan:
    """What the driver worked out before training."""

    run: str  # the run folder (local or s3://)
    model_name: str
    pretrained: str | None
    images: int  # usable corpus images (one epoch)
    total_steps: int


def _noop(*args, **kwargs) -> None:
    return None


@dataclass
class Worker:
    """This worker's place in the run (defaults: one plain process on the CPU)."""

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"
    wrap: Callable = lambda model: model  # DDP for several workers
    report: Callable = _noop  # report(metrics, checkpoint_dir or None); every rank calls it at the same steps
    restored: str | None = None  # checkpoint folder to resume from
    barrier: Callable = _noop
    extras: dict = field(default_factory=dict)


def lr_at(step: int, cfg: PretrainConfig, total_steps: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up to ``lr``, then cosine to ``min_lr``
    (``schedule: constant``: ``lr``)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(total_steps - cfg.warmup_steps, 1)
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """``adamw``: AdamW, decoupled decay on matrices only (open_clip's recipe); ``adam_l2``: Adam with
    ``weight_decay`` as coupled L2 (added to the gradient) on every trainable parameter, as the official UniQA
    ``train.py`` builds it (``optim.Adam(model.parameters(), ..., weight_decay=0.2)``)."""
    hyper = {"lr": cfg.lr, "betas": (cfg.beta1, cfg.beta2), "eps": cfg.eps}
    if cfg.optimizer == "adam_l2":
        params = [p for p in model.parameters() if p.requires_grad]
        return torch.optim.Adam(params, weight_decay=cfg.weight_decay, **hyper)
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), **hyper)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only (not on gains, biases or logit_scale), as open_clip does."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_model(cfg: PretrainConfig, plan: Plan, device: str) -> torch.nn.Module:
    """The model to train (same random init on every worker), towers locked as configured."""
    from uniqa.models import create_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model, _, _ = create_model(plan.model_name, plan.pretrained)
    if cfg.lock_image:
        model.lock_image_tower(unlocked_groups=0, freeze_bn_stats=False)
    if cfg.lock_text:
        model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
    return model.to(device).train()


def save_initial_weights(cfg: PretrainConfig, model_name: str, folder: str, pretrained: str | None = None) -> str:
    """The exact weights a run with ``cfg`` starts from (:func:`build_model`: ``cfg.seed``'s random init, or
    ``pretrained``), saved as a checkpoint folder that ``uniqa score --model`` takes -> its sha256 (checked on
    read-back). "Zero-shot before pre-training" scores this folder."""
    from uniqa.errors import UniqaError
    from uniqa.models import file_checksum, save_checkpoint

    plan = Plan(run=folder, model_name=model_name, pretrained=pretrained, images=0, total_steps=0)
    sha = save_checkpoint(build_model(cfg, plan, "cpu"), model_name, folder)
    if file_checksum(folder) != sha:
        raise UniqaError(f"the initial weights {folder} do not read back with the checksum they were written with")
    return sha


def normalise(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float, OpenAI CLIP mean/std."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(OPENAI_DATASET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def forward_loss(model, images: torch.Tensor, tokens: torch.Tensor, rank: int = 0, world_size: int = 1,
                 bf16: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Contrastive loss of one micro-batch (negatives from every worker) -> (loss, logit scale)."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        image_features, text_features, scale = model(normalise(images), tokens)[:3]
        loss = contrastive_loss(image_features.float(), text_features.float(), scale.float(), rank, world_size)
    return loss, scale


def save_state(folder: str, model, optimizer, step: int, keys: list[int]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, os.path.join(folder, WEIGHTS))
    torch.save({"optimizer": optimizer.state_dict(), "step": step, "keys": torch.tensor(keys, dtype=torch.int64),
                "rng": torch.get_rng_state()}, os.path.join(folder, STATE))


def load_state(folder: str, model, optimizer) -> tuple[int, list[int]]:
    """Restore weights, optimizer state and RNG from a checkpoint folder -> (step, sampler key per rank)."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(os.path.join(folder, WEIGHTS), device="cpu"))
    state = torch.load(os.path.join(folder, STATE), map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    keys = state["keys"].tolist() if "keys" in state else [int(state["key"])]  # one key: an older checkpoint
    return int(state["step"]), keys


def _mean(value: torch.Tensor, worker: Worker) -> torch.Tensor:
    if worker.world_size == 1:
        return value
    import torch.distributed as dist

    value = value.clone()
    dist.all_reduce(value)
    return value / worker.world_size


def _gather_keys(key: int, worker: Worker) -> list[int]:
    """Every rank's sampler key, in rank order."""
    if worker.world_size == 1:
        return [key]
    import torch.distributed as dist

    mine = torch.tensor([key], dtype=torch.int64, device=worker.device)
    keys = [torch.zeros_like(mine) for _ in range(worker.world_size)]
    dist.all_gather(keys, mine)
    return [int(k) for k in torch.cat(keys).tolist()]


def train(cfg: PretrainConfig, plan: Plan, worker: Worker, batches: Callable[[], Iterator[dict]]) -> dict:
    """Run optimiser steps until ``plan.total_steps`` (resuming from ``worker.restored``); rank 0 exports the
    final model. ``batches()`` yields dicts of ``image`` (uint8 NHWC), ``tokens`` and ``order`` tensors of
    ``cfg.micro_batch`` rows. Returns the last step's metrics."""
    use_policy_threads(cfg.threads)  # the worker's reserved CPUs (a plain loop in a driver: 1 for a small model)
    model = build_model(cfg, plan, worker.device)
    optimizer = make_optimizer(model, cfg)
    step, keys = load_state(worker.restored, model, optimizer) if worker.restored else (0, [])
    if keys and len(keys) != worker.world_size and worker.rank == 0:
        logging.getLogger(__name__).warning("resuming %d worker(s) from a checkpoint of %d: each rank restarts "
                                            "after the smallest key, some rows are trained on again",
                                            worker.world_size, len(keys))
    if worker.rank == 0:
        write_resume_keys(plan.run, keys)  # each rank's stream starts after its row (read when its tasks run)
    worker.barrier()
    key = -1
    log = MetricsLog(plan.run, step) if worker.rank == 0 else None
    ddp = worker.wrap(model)
    bf16 = cfg.precision in ("auto", "bf16") and str(worker.device).startswith("cuda")
    params = [p for p in model.parameters() if p.requires_grad]
    stream = iter(batches()) if step < plan.total_steps else iter(())
    metrics: dict = {"step": step}
    while step < plan.total_steps:
        start = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg, plan.total_steps)
        total = torch.zeros((), device=worker.device)
        for _ in range(cfg.accumulation):
            batch = next(stream, None)
            if batch is None:
                raise RuntimeError(f"the data stream ended at step {step} of {plan.total_steps}")
            images, tokens = batch["image"].to(worker.device), batch["tokens"].to(worker.device)
            loss, scale = forward_loss(ddp, images, tokens, worker.rank, worker.world_size, bf16)
            (loss / cfg.accumulation).backward()
            total += loss.detach() / cfg.accumulation
            key = int(batch["order"].max())
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(cfg.max_logit_scale))
        step += 1
        seconds = time.perf_counter() - start
        loss_all, scale_now = float(_mean(total, worker)), float(model.logit_scale.detach().exp())
        metrics = {"step": step, "loss": loss_all, "lr": optimizer.param_groups[0]["lr"],
                   "logit_scale": scale_now, "images_per_s": round(cfg.batch_size / seconds, 2),
                   "epoch": round(step * cfg.batch_size / plan.images, 4), "time": round(time.time(), 3),
                   "threads": torch.get_num_threads()}
        if log is not None:
            log.add(metrics)
        if step % cfg.checkpoint_every == 0 or step == plan.total_steps:
            _checkpoint(model, optimizer, step, _gather_keys(key, worker), metrics, worker, plan, log)
        elif log is not None and step % cfg.log_every == 0:
            log.flush()
    if worker.rank == 0:
        export(model, plan)
    return metrics


def _checkpoint(model, optimizer, step, keys, metrics, worker: Worker, plan: Plan, log: MetricsLog | None) -> None:
    if worker.rank != 0:
        worker.report(metrics, None)
        return
    log.flush()
    with tempfile.TemporaryDirectory() as folder:
        save_state(folder, model, optimizer, step, keys)
        worker.report(metrics, folder)
    write_resume_keys(plan.run, keys)


def export(model: torch.nn.Module, plan: Plan) -> str:
    """``RUN/final``: our checkpoint folder + ``openai.pt`` (OpenAI-format state dict) -> the folder."""
    from uniqa.models import save_checkpoint, save_openai_state_dict

    folder = storage.join(plan.run, FINAL)
    model = model.eval()
    save_checkpoint(model, plan.model_name, folder)
    save_openai_state_dict(model, storage.join(folder, "openai.pt"))
    return folder
