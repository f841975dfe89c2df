"""``uniqa demo``: the main job end to end on the embedded sample corpus (CPU, no downloads).

sample corpus -> manifests -> captions (offline ``attributes`` captioner) -> purified comments -> corpus
-> zero-shot scores (quality + aesthetics heads, one encoder pass) -> evaluation on each dataset's test split.
Every step is the stage's own run function, found through its ``COMMAND`` and called exactly as ``uniqa <stage>``
calls it (inputs by flag name, a config built from a dict like a ``--config`` file); each stage writes its
``_summary.json``. Outputs land under ``--out``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from typing import Any

DEMO_MODEL = "uniqa-small"
DERIVED = ("manifests", "captions", "purified", "corpus", "scores", "evaluation")  # rebuilt on every run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the embedded sample corpus (CPU, no downloads)")
    p.add_argument("--out", default="runs/demo", help="output folder, local or s3:// (default runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="sample corpus seed (default 0)")
    p.add_argument("--model", default=DEMO_MODEL, help=f"model or checkpoint to score with (default {DEMO_MODEL})")
    p.add_argument("--pretrained", default=None, help="weights for --model (default: none, random init)")
    p.set_defaults(func=run)


def run_stage(module: str, out: str, config: dict[str, Any], **inputs: Any):
    """Run the stage that ``module`` (its ``cli.py``) declares, as the CLI would: ``inputs`` by flag name (``input``
    for ``--input``), ``config`` as a config file's contents; prints and returns its :class:`StageSummary`."""
    from uniqa.config import from_dict

    command = importlib.import_module(module).COMMAND
    args = [inputs[arg.dest] if arg.dest in inputs or arg.required else [] if arg.multiple else None
            for arg in command.inputs]
    cfg = from_dict(command.load(command.config), config)
    start = time.perf_counter()
    print(f"[demo] {command.name} -> {out} ...", flush=True)
    summary = command.load(command.run)(*args, out, cfg, progress=False)
    print(f"[demo] {command.name} done in {time.perf_counter() - start:.1f} s\n        {summary.line()}", flush=True)
    return summary


def paths(out: str) -> dict[str, str]:
    from uniqa import storage

    return {key: storage.join(out, *parts) for key, parts in {
        "sample": ("sample",), "iqa": ("manifests", "iqa"), "iaa": ("manifests", "iaa"), "captions": ("captions",),
        "purified": ("purified",), "corpus": ("corpus",), "scores_iqa": ("scores", "iqa"),
        "scores_iaa": ("scores", "iaa"), "eval_iqa": ("evaluation", "iqa"), "eval_iaa": ("evaluation", "iaa"),
    }.items()}


def prepare_inputs(out: str, p: dict[str, str], seed: int) -> None:
    """Derived outputs start afresh (the sample is kept); the sample is built if needed; manifests prepared."""
    from uniqa import storage
    from uniqa.data.prepare import PrepareConfig, prepare
    from uniqa.data.sample import build_sample

    for name in DERIVED:
        if storage.exists(storage.join(out, name)):
            fs, path = storage.resolve(storage.join(out, name))
            fs.delete_dir(path)
    if not storage.exists(storage.join(p["sample"], "iqa", "dmos.csv")):
        print("[demo] building the sample corpus ...", flush=True)
        build_sample(p["sample"], seed=seed)
    prepare("kadid10k", storage.join(p["sample"], "iqa"), p["iqa"], PrepareConfig())
    prepare("ava", storage.join(p["sample"], "iaa"), p["iaa"], PrepareConfig())


def run(args) -> int:
    import logging

    from uniqa import storage
    from uniqa.evaluation.run import format_table

    logging.getLogger("ray").setLevel(logging.WARNING)  # the demo prints its own per-step summaries
    out, p, start = args.out, paths(args.out), time.perf_counter()
    score_cfg = {"model": args.model, "pretrained": args.pretrained, "heads": ["quality", "aesthetics"],
                 "views": "five", "num_cpus": 0.5, "decode_cpus": 0.5, "rows_per_block": 64}
    prepare_inputs(out, p, args.seed)
    summaries = [run_stage("uniqa.captioning.cli", p["captions"], {"backend": "attributes"}, manifest=p[part])
                 for part in ("iqa", "iaa")]
    # Bag-of-words relevance: meaningful without pretrained CLIP weights (use embedder.name=clip with weights).
    summaries.append(run_stage("uniqa.purification.cli", p["purified"], {"embedder": {"name": "bow"}},
                               manifest=p["iaa"], captions=p["captions"]))
    summaries.append(run_stage("uniqa.corpus.cli", p["corpus"], {}, manifest=[p["iqa"], p["iaa"]],
                               captions=[p["captions"]], purified=[p["purified"]]))
    for part in ("iqa", "iaa"):
        summaries.append(run_stage("uniqa.scoring.cli", p[f"scores_{part}"], score_cfg, input=p[part]))
    evaluations = [run_stage("uniqa.evaluation.cli", p[f"eval_{part}"], {"split": "split_0"},
                             scores=p[f"scores_{part}"], manifest=p[part]) for part in ("iqa", "iaa")]
    results = [row for s in evaluations for row in s.details.get("table", [])]
    print(f"\n[demo] zero-shot results on the test split (split_0), against mos_norm:\n{format_table(results)}")
    if not args.pretrained:
        print("  (random-init model: correlations are chance level until a pre-trained checkpoint is given)")
    summaries += evaluations
    summary = {"out": out, "seconds": round(time.perf_counter() - start, 1), "paths": p, "results": results,
               "stages": [{k: v for k, v in s.to_dict().items() if k != "details"} for s in summaries]}
    storage.write_bytes(storage.join(out, "demo_summary.json"), json.dumps(summary, indent=2).encode())
    print(f"[demo] finished in {summary['seconds']} s; summary in {storage.join(out, 'demo_summary.json')}")
    return max(s.exit_code for s in summaries)
