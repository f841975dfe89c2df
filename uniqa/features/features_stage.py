"""Ray Data stages of the feature cache: decode + views (CPU tasks) and the frozen encoder (an actor pool).

The logic lives in :mod:`uniqa.features.batches` and :class:`uniqa.models.encoder.ImageEncoder`; these only wire
it into Ray (resources, actor pool, batch sizes).
"""

from __future__ import annotations

import numpy as np

from uniqa.errors import UniqaError
from uniqa.features.batches import feature_views_batch, row_errors, write_features
from uniqa.features.config import FeaturesConfig
from uniqa.models.encoder import FrozenModel
from uniqa.runtime import gpus_per_actor, use_policy_threads


class FeatureStage:
    """Model actor: loads the frozen model once, then encodes every view of a batch of images."""

    def __init__(self, frozen: FrozenModel, cfg: FeaturesConfig, use_gpu: bool):
        import torch

        from uniqa.models.encoder import ImageEncoder

        self.device = "cuda" if use_gpu and torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            use_policy_threads(cfg.threads)  # the actor's reserved CPUs (cfg.num_cpus) unless cfg.threads says
        model, _ = frozen.load(self.device, cfg.precision)
        self.encoder = ImageEncoder(model, cfg.views_per_pass)
        self.dim = self.encoder.output_dim

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        views = batch["views"]
        features = np.zeros((*views.shape[:2], self.dim), np.float32)
        ok = np.flatnonzero([e is None for e in row_errors(batch["error"])])
        if len(ok):
            flat = torch.from_numpy(np.ascontiguousarray(views[ok]).reshape(-1, *views.shape[2:])).to(self.device)
            with torch.inference_mode():
                features[ok] = self.encoder(flat).cpu().numpy().reshape(len(ok), views.shape[1], -1)
        return {"image_id": batch["image_id"], "features": features, "error": batch["error"]}


def add_feature_stages(ds, cfg: FeaturesConfig, frozen: FrozenModel, out: str, protocol: str):
    """``image_id, image_uri`` [, ``decode_size``] rows -> decode + views tasks -> encoder actors -> part files under
    ``out``, every row keyed by ``protocol`` (:meth:`FeaturesConfig.protocol`)."""
    import ray

    ds = ds.map_batches(
        feature_views_batch,
        fn_kwargs={"decode": cfg.decode_config(), "size": frozen.image_size, "train_views": cfg.train_views,
                   "test_protocol": cfg.test_views, "seed": cfg.seed},
        batch_format="numpy", batch_size=None, num_cpus=cfg.decode_cpus,
    )
    num_gpus = gpus_per_actor(cfg.num_gpus)
    if num_gpus == 0 and cfg.precision == "fp16":
        raise UniqaError("precision fp16 needs GPUs, and the model actors get none; use fp32 or bf16")
    ds = ds.map_batches(
        FeatureStage, fn_constructor_kwargs={"frozen": frozen, "cfg": cfg, "use_gpu": num_gpus > 0},
        batch_format="numpy", batch_size=cfg.batch_size, compute=ray.data.ActorPoolStrategy(size=cfg.num_actors),
        num_cpus=cfg.num_cpus, num_gpus=num_gpus,
        label_selector={},  # keeps Ray from fusing decoding into the model actors (see scoring's stage)
    )
    # Light I/O with no CPU reserved: files (the unit of resume) land as batches finish.
    return ds.map_batches(
        write_features,
        fn_kwargs={"out": out, "train_views": cfg.train_views, "test_protocol": cfg.test_views,
                   "model_key": frozen.key, "protocol": protocol, "seed": cfg.seed},
        batch_format="numpy", batch_size=cfg.rows_per_file, num_cpus=0,
    )
