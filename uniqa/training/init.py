"""``uniqa init``: the random-init weights a pre-training run starts from, as a checkpoint folder.

The training loop's own ``build_model`` with the same config and seed makes them, so "zero-shot before
pre-training" (``uniqa score --model OUT``) scores exactly what pre-training starts from. The weights are keyed by
model, seed and initial weights: a rerun finds them done while they still have the checksum they were written with.
"""

from __future__ import annotations

from uniqa.stage import Outcome, Plan, Run, StageSummary
from uniqa.training.config import PretrainConfig


def preflight(out: str, cfg: PretrainConfig) -> Plan:
    """The model name resolves (one error line otherwise)."""
    from uniqa.models import resolve_model_name

    return Plan(inputs={}, identity={"model": resolve_model_name(cfg.model), "seed": cfg.seed,
                                     "pretrained": cfg.pretrained}, resume="whole")


def work(plan: Plan, out: str, cfg: PretrainConfig, run: Run) -> Outcome:
    """Write ``cfg``'s initial weights to ``out`` -> one checkpoint; ``details``: the model, seed and the weights'
    sha256. Runs in this process."""
    from uniqa.training.loop import save_initial_weights

    name = plan.identity["model"]
    sha = save_initial_weights(cfg, name, out, cfg.pretrained)
    return Outcome(rows_in=1, rows_out=1, rows_written=1, unit="checkpoints",
                   details={"model": name, "seed": cfg.seed, "sha256": sha,
                            "built_by": "uniqa.training.loop.build_model"})


def output_rows(out: str) -> int:
    """1 while the weights under ``out`` have the checksum their summary recorded, else 0."""
    from uniqa.errors import UniqaError
    from uniqa.models import file_checksum
    from uniqa.stage import read_summary

    try:
        return int(file_checksum(out) == read_summary(out)["details"]["sha256"])
    except (OSError, KeyError, ValueError, UniqaError):
        return 0


def run_init(out: str, cfg: PretrainConfig = PretrainConfig(), *, progress: bool = True,
             address: str | None = None) -> StageSummary:
    """Write ``cfg``'s initial weights (``cfg.model``, ``cfg.seed``, ``cfg.pretrained``) to ``out``
    (:func:`uniqa.executor.execute`)."""
    from uniqa.executor import execute

    return execute("init", [], out, cfg, progress=progress, address=address)
