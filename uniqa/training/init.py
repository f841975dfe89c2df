"""``uniqa init``: the random-init weights a pre-training run starts from, as a checkpoint folder.

The training loop's own ``build_model`` with the same config and seed makes them, so "zero-shot before
pre-training" (``uniqa score --model OUT``) scores exactly what pre-training starts from.
"""

from __future__ import annotations

from uniqa.stage import StageSummary, Timer, config_fingerprint
from uniqa.training.config import PretrainConfig


def run_init(out: str, cfg: PretrainConfig = PretrainConfig(), *, progress: bool = True,
             address: str | None = None) -> StageSummary:
    """Write ``cfg``'s initial weights (``cfg.model``, ``cfg.seed``, ``cfg.pretrained``) to ``out`` -> the stage
    summary (one checkpoint; ``details``: the model, seed and the weights' sha256). Runs in this process."""
    from uniqa.models import resolve_model_name
    from uniqa.training.loop import save_initial_weights

    del progress, address
    with Timer() as timer:
        name = resolve_model_name(cfg.model)
        sha = save_initial_weights(cfg, name, out, cfg.pretrained)
    return StageSummary(stage="init", inputs={}, output=out, rows_in=1, rows_out=1, rows_written=1,
                        seconds=timer.seconds, unit="checkpoints", config_fingerprint=config_fingerprint(cfg),
                        details={"model": name, "seed": cfg.seed, "sha256": sha,
                                 "built_by": "uniqa.training.loop.build_model"}).write()
