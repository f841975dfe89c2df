"""``uniqa demo``: the main job end to end on the embedded sample corpus (CPU, no downloads).

sample corpus -> manifests -> captions (offline ``attributes`` captioner) -> purified comments -> corpus
-> zero-shot scores (quality + aesthetics heads, one encoder pass) -> evaluation on each dataset's test split.
Every step is the same run function the CLI and ``pipelines/`` use; outputs land under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time

DEMO_MODEL = "uniqa-small"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the embedded sample corpus (CPU, no downloads)")
    p.add_argument("--out", default="runs/demo", help="output folder, local or s3:// (default runs/demo)")
    p.add_argument("--seed", type=int, default=0, help="sample corpus seed (default 0)")
    p.add_argument("--model", default=DEMO_MODEL, help=f"model or checkpoint to score with (default {DEMO_MODEL})")
    p.add_argument("--pretrained", default=None, help="weights for --model (default: none, random init)")
    p.set_defaults(func=run)


def _step(name: str, fn, *args, **kwargs):
    start = time.perf_counter()
    print(f"[demo] {name} ...", flush=True)
    result = fn(*args, **kwargs)
    print(f"[demo] {name} done in {time.perf_counter() - start:.1f} s", flush=True)
    return result


def evaluate(manifest: str, scores: str, head: str, split: str = "split_0") -> dict:
    """Metrics of one score column against MOS on the test side of ``split`` (rows with errors excluded)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from uniqa import storage
    from uniqa.evaluation.metrics import all_metrics
    from uniqa.schema import MANIFEST
    from uniqa.tables import parquet_files, read_table

    labels = read_table(manifest, MANIFEST).select(["image_id", "mos", split])
    score_tables = []
    for f in parquet_files(scores):
        fs, path = storage.resolve(f)
        score_tables.append(pq.read_table(path, columns=["image_id", head, "error"], filesystem=fs))
    joined = labels.join(pa.concat_tables(score_tables), "image_id")
    test = joined.filter(pc.and_(pc.equal(joined[split], "test"), pc.is_null(joined["error"])))
    metrics = all_metrics(test[head].to_numpy(), test["mos"].to_numpy())
    return {"head": head, "split": split, "images": len(test), **{k: round(v, 4) for k, v in metrics.items()}}


def run(args) -> int:
    import logging

    from uniqa import storage
    from uniqa.captioning.config import CaptionConfig
    from uniqa.captioning.run import run_caption
    from uniqa.corpus.run import run_corpus
    from uniqa.data.prepare import PrepareConfig, prepare
    from uniqa.data.sample import build_sample
    from uniqa.purification.embedders import EmbedderConfig
    from uniqa.purification.purify import PurifyConfig
    from uniqa.purification.run import run_purify
    from uniqa.scoring.config import ScoreConfig
    from uniqa.scoring.run import run_score

    logging.getLogger("ray").setLevel(logging.WARNING)  # the demo prints its own per-step summaries
    out = args.out
    p = {k: storage.join(out, *v) for k, v in {
        "sample": ("sample",), "iqa": ("manifests", "iqa"), "iaa": ("manifests", "iaa"), "captions": ("captions",),
        "purified": ("purified",), "corpus": ("corpus",), "scores_iqa": ("scores", "iqa"),
        "scores_iaa": ("scores", "iaa")}.items()}
    # Configs first: a bad flag fails before any work.
    score_cfg = ScoreConfig(model=args.model, pretrained=args.pretrained, heads=("quality", "aesthetics"),
                            views="five", num_cpus=0.5, decode_cpus=0.5, rows_per_block=64)
    caption_cfg = CaptionConfig(backend="attributes", progress=False)
    # Bag-of-words relevance: meaningful without pretrained CLIP weights (use embedder.name=clip with weights).
    purify_cfg = PurifyConfig(embedder=EmbedderConfig(name="bow"))
    start = time.perf_counter()

    for key in ("iqa", "iaa", "captions", "purified", "corpus", "scores_iqa", "scores_iaa"):
        if storage.exists(p[key]):  # a rerun starts the derived outputs afresh (the sample is kept)
            fs, path = storage.resolve(p[key])
            fs.delete_dir(path)
    if not storage.exists(storage.join(p["sample"], "iqa", "dmos.csv")):
        _step("build sample corpus", build_sample, p["sample"], seed=args.seed)
    _step("prepare manifests", lambda: [
        prepare("kadid10k", storage.join(p["sample"], "iqa"), p["iqa"], PrepareConfig()),
        prepare("ava", storage.join(p["sample"], "iaa"), p["iaa"], PrepareConfig())])
    for part in ("iqa", "iaa"):
        s = _step(f"caption {part} (attributes)", run_caption, p[part], p["captions"], caption_cfg)
        print(f"        rows out {s['rows_out']}, errors {s['errors']}, already done {s['already_done']}")
    s = _step("purify comments", run_purify, p["iaa"], p["captions"], p["purified"], purify_cfg, progress=False)
    print(f"        kept {s['kept']} of {s['comments']} comments; rejected {s['rejected_by_reason']}")
    s = _step("build corpus", run_corpus, [p["iqa"], p["iaa"]], [p["captions"]], [p["purified"]], p["corpus"])
    print(f"        {s['pairs']} pairs, per source {s['pairs_per_source']}")
    for part in ("iqa", "iaa"):
        s = _step(f"score {part} (zero-shot, {args.model})", run_score, p[part], p[f"scores_{part}"], score_cfg,
                  progress=False)
        print(f"        {s.line()}")
    results = {
        "kadid10k (sample) quality": evaluate(p["iqa"], p["scores_iqa"], "quality"),
        "ava (sample) aesthetics": evaluate(p["iaa"], p["scores_iaa"], "aesthetics"),
    }
    print("\n[demo] zero-shot results on the test split (split_0):")
    for name, r in results.items():
        print(f"  {name:28s} n={r['images']:4d}  SRCC {r['srcc']:+.3f}  PLCC {r['plcc']:+.3f}  KRCC {r['krcc']:+.3f}")
    if not args.pretrained:
        print("  (random-init model: correlations are chance level until a pre-trained checkpoint is given)")
    summary = {"out": out, "seconds": round(time.perf_counter() - start, 1), "paths": p, "results": results}
    storage.write_bytes(storage.join(out, "demo_summary.json"), json.dumps(summary, indent=2).encode())
    print(f"[demo] finished in {summary['seconds']} s; summary in {storage.join(out, 'demo_summary.json')}")
    return 0
