"""Ray Data stages of scoring: decode + views (CPU tasks) and the model (an actor pool).

The logic lives in :mod:`uniqa.scoring.batches` and :class:`uniqa.scoring.api.Scorer`; these only
wire it into Ray (resources, actor pool, batch sizes).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from uniqa.errors import UniqaError
from uniqa.runtime import gpus_per_actor, use_policy_threads
from uniqa.scoring.batches import classic_table, views_batch
from uniqa.scoring.config import ScoreConfig


class ScoreStage:
    """Model actor: loads the model and every head once, then scores views batches."""

    def __init__(self, cfg: ScoreConfig, checksum: str, use_gpu: bool):
        import torch

        from uniqa.scoring.api import Scorer

        device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
        if device == "cpu":
            use_policy_threads(cfg.threads)  # the actor's reserved CPUs (cfg.num_cpus) unless cfg.threads says
        self.scorer = Scorer(cfg, device=device, checksum=checksum)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        return self.scorer.score_views(batch)


def add_score_stages(ds, cfg: ScoreConfig, checksum: str):
    """``image_id, image_uri`` rows -> decode + views (+ classic metrics) tasks -> model actor pool -> score rows.
    With classic heads only, the decode tasks make the score rows and no model actor starts."""
    import ray

    classic = [(s.name, s.source) for s in cfg.classic_heads]
    protocol = cfg.views if cfg.model_heads else None
    ds = ds.map_batches(
        views_batch,
        fn_kwargs={"decode": cfg.decode_config(), "protocol": protocol, "size": cfg.image_size, "seed": cfg.seed,
                   "classic": tuple(metric for _, metric in classic)},
        batch_format="numpy",
        batch_size=None,  # one block (cfg.block_rows rows) per task
        num_cpus=cfg.decode_cpus,
    )
    if not cfg.model_heads:
        return ds.map_batches(classic_table, fn_kwargs={"heads": classic, "checksum": checksum},
                              batch_format="numpy", batch_size=None, num_cpus=cfg.decode_cpus)
    num_gpus = gpus_per_actor(cfg.num_gpus)
    if num_gpus == 0 and cfg.precision == "fp16":
        raise UniqaError("precision fp16 needs GPUs, and the model actors get none (num_gpus 0 or a CPU-only "
                         "cluster); use fp32 or bf16")
    return ds.map_batches(
        ScoreStage,
        fn_constructor_kwargs={"cfg": cfg, "checksum": checksum, "use_gpu": num_gpus > 0},
        batch_format="numpy",
        batch_size=cfg.batch_size,
        compute=ray.data.ActorPoolStrategy(size=cfg.num_actors),
        num_cpus=cfg.num_cpus,
        num_gpus=num_gpus,
        # An empty label selector (no constraint) differs from the decode stage's none: it keeps Ray from fusing
        # decoding into the model actors (it does when both ask for the same CPUs and no GPU), so images decode
        # in parallel tasks while the actors run the model.
        label_selector={},
    )
