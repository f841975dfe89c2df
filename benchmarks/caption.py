"""Captioning with a real vLLM engine, one run, same model, images, prompts and sampling: (a) the engine called
directly (``vllm.LLM.chat`` on every prompt at once, the fastest one engine goes) vs (b) ``uniqa caption
--backend vllm`` (ray.data.llm's vLLM engine processor: decode + encode, multimodal, chat template, tokenize,
engine, detokenize stages, committed Parquet files).

    python benchmarks/caption.py [--images 1024] [--warm-images 64] [--model DIR] [--max-tokens 16] [--work DIR]
                                 [--busy 1]

Needs vLLM (``make test-vllm`` builds ``.venv-vllm``; run it with ``.venv-vllm/bin/python``). Without ``--model``
it builds the tiny random Qwen2-VL of tests/vllm_model.py. Each side runs in its own process, (a) first, on the
same ``--images`` images; prints captions/s end to end (engine start included) and in steady state, and the
steady-state ratio b/a (goal >= 0.8). Steady state leaves out the fixed start that a real collection amortises:
(a) the seconds of ``LLM.chat`` (image encoding + generation) after the engine is loaded; (b) ``uniqa caption``
runs twice on one Ray, first on ``--warm-images`` images: ``(n - warm) / (t(n) - t(warm))`` removes what every run
pays once (Ray Data's plan, the stage actors' and the engine's start). On a CPU the pipeline's Ray has 4 logical
CPUs and the CPU-side stages 0.25 each (see uniqa.captioning.backends.vllm). The images are written once; ``--busy 1``
measures both sides again beside a CPU-burning process and prints both side by side (benchmarks/neighbours.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/
from neighbours import add_busy_argument, side_by_side  # noqa: E402

ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false",
       "RAY_USAGE_STATS_ENABLED": "0", "RAY_OVERRIDE_RESOURCES": json.dumps({"CPU": 4})}


def make_manifest(root: Path, n: int) -> str:
    """``n`` ordinary JPEGs (96x64), alternating quality / aesthetics rows, as a manifest folder."""
    import pyarrow as pa
    from zoo import good_images

    from uniqa.schema import MANIFEST, SPLIT_COLUMNS
    from uniqa.tables import write_table

    uris = good_images(root / "images", n, size=(96, 64), seed=11)
    levels = ["bad", "poor", "fair", "good", "perfect"]
    rows = [{"image_id": f"b/{i}", "image_uri": u, "dataset": "b", "task": ["quality", "aesthetics"][i % 2],
             "mos": float(i), "mos_norm": i / n, "level": levels[i % 5], **{c: "train" for c in SPLIT_COLUMNS}}
            for i, u in enumerate(uris)]
    write_table(pa.Table.from_pylist(rows), str(root / "manifest"), MANIFEST)
    return str(root / "manifest")


def caption_config(model: str, max_tokens: int, batch_size: int):
    """The run's CaptionConfig: the ``vllm`` backend with the CPU build's settings (tests/test_vllm_engine.py)."""
    from vllm_model import MAX_MODEL_LEN, MAX_PIXELS, MIN_PIXELS

    from uniqa.captioning.config import CaptionConfig, VLLMConfig

    v = VLLMConfig(model_source=model, max_model_len=MAX_MODEL_LEN, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS,
                   dtype="bfloat16", log_engine_metrics=False, placement_group_config={"bundles": [{"CPU": 1}]},
                   engine_kwargs={"enforce_eager": True}, enable_prefix_caching=False, batch_size=batch_size,
                   stage_num_cpus=0.25,
                   max_tokens=max_tokens, temperature=0.0)
    return CaptionConfig(backend="vllm", vllm=v, rows_per_block=batch_size, rows_per_file=batch_size)


def direct(manifest: str, cfg) -> dict:
    """(a): decode + encode every image as the pipeline does, then one ``LLM.chat`` call over all prompts."""
    from vllm import LLM, SamplingParams

    from uniqa.captioning.backends.vllm import vllm_sampling_params
    from uniqa.captioning.chat import encode_batch, row_messages
    from uniqa.captioning.instructions import task_prompts
    from uniqa.data.images import DecodeConfig
    from uniqa.schema import MANIFEST
    from uniqa.tables import read_table

    v = cfg.vllm
    start = time.perf_counter()
    llm = LLM(model=v.model_source, max_model_len=v.max_model_len, dtype=v.dtype, enforce_eager=True,
              limit_mm_per_prompt={"image": v.limit_mm_per_prompt, "video": 0}, enable_prefix_caching=False,
              mm_processor_kwargs={"min_pixels": v.min_pixels, "max_pixels": v.max_pixels})
    loaded = time.perf_counter()
    table = read_table(manifest, MANIFEST)
    batch = {k: table[k].to_numpy(zero_copy_only=False) for k in ("image_id", "image_uri", "task", "level")}
    encoded = encode_batch(batch, DecodeConfig(max_pixels=cfg.max_pixels), v.max_pixels, v.jpeg_quality)
    prompts = task_prompts(cfg.prompt_version)
    rows = [dict(zip(encoded, values)) for values in zip(*encoded.values())]
    conversations = [row_messages(row, prompts)[0] for row in rows]
    outputs = llm.chat(conversations, SamplingParams(**vllm_sampling_params(v)), use_tqdm=False)
    done = time.perf_counter()
    captions = sum(bool(o.outputs[0].text.strip()) for o in outputs)
    return {"n": len(rows), "captions": captions, "seconds": done - start, "steady_seconds": done - loaded,
            "load_seconds": loaded - start}


def pipeline(manifest: str, warm_manifest: str, cfg, work: Path) -> dict:
    """(b): ``uniqa caption --backend vllm``'s run function, on ``warm_manifest`` then on ``manifest``, one Ray."""
    from uniqa.captioning.run import run_caption
    from uniqa.runtime import init_ray

    start = time.perf_counter()
    init_ray()
    ray_s = time.perf_counter() - start
    timed = {}
    for name, m in (("warm", warm_manifest), ("full", manifest)):
        t = time.perf_counter()
        s = run_caption(m, str(work / f"captions-{name}"), cfg, progress=False)
        timed[name] = (s.rows_in, s.rows_out - s.rows_with_errors, time.perf_counter() - t)
    (n_warm, _, t_warm), (n, captions, t_full) = timed["warm"], timed["full"]
    # None: the fixed start varied more than the work of n - warm images took (a loaded, shared machine): rerun
    steady = n * (t_full - t_warm) / (n - n_warm) if t_full > t_warm else None
    return {"n": n, "captions": captions, "seconds": ray_s + t_full, "steady_seconds": steady,
            "warm_images": n_warm, "warm_seconds": t_warm, "ray_start_seconds": ray_s}


def child(args) -> None:
    """One measurement in this process (``--side direct|pipeline``); prints one JSON line."""
    manifest, warm_manifest = args.manifests
    cfg = caption_config(args.model, args.max_tokens, args.batch_size)
    if args.side == "direct":
        result = direct(manifest, cfg)
    else:
        result = pipeline(manifest, warm_manifest, cfg, Path(args.work))
    print("RESULT " + json.dumps(result), flush=True)


def run_side(side: str, manifests: list[str], work: str, args) -> dict:
    cmd = [sys.executable, __file__, "--side", side, "--manifests", *manifests, "--model", args.model,
           "--work", work, "--max-tokens", str(args.max_tokens), "--batch-size", str(args.batch_size)]
    proc = subprocess.run(cmd, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=args.timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{side} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    steady = f"{result['steady_seconds']:7.1f} s" if result["steady_seconds"] else "n/a"
    print(f"  {side:8s}: {result['seconds']:7.1f} s end to end, {steady} steady, "
          f"{result['captions']} / {result['n']} captions", flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--warm-images", type=int, default=64)
    p.add_argument("--model", default=None, help="model folder (default: the tiny random Qwen2-VL, built offline)")
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--work", default=None)
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--side", choices=("direct", "pipeline"), help=argparse.SUPPRESS)
    p.add_argument("--manifests", nargs=2, metavar=("FULL", "WARM"), help=argparse.SUPPRESS)
    add_busy_argument(p)
    args = p.parse_args()
    for k, v in ENV.items():
        os.environ.setdefault(k, v)
    if args.model is None:
        from vllm_model import tiny_vlm

        args.model = tiny_vlm()
    if args.side:
        return child(args)
    args.work = args.work or tempfile.mkdtemp(prefix="uniqa-caption-bench-")
    n = args.images
    print(f"model {args.model}, {n} images, max_tokens {args.max_tokens}, batch {args.batch_size}, work {args.work}")
    manifests = [make_manifest(Path(args.work) / name, k) for name, k in (("full", n), ("warm", args.warm_images))]
    runs = itertools.count()

    def measure() -> dict:
        work = Path(args.work) / f"run-{next(runs)}"  # captions resume: each measurement writes afresh
        res = {side: run_side(side, manifests, str(work / side), args) for side in ("direct", "pipeline")}
        steady = {side: n / r["steady_seconds"] if r["steady_seconds"] else float("nan") for side, r in res.items()}
        e2e = {side: n / r["seconds"] for side, r in res.items()}
        for side in ("direct", "pipeline"):
            print(f"{side:8s}: {steady[side]:6.2f} captions/s steady state, {e2e[side]:6.2f} captions/s end to end")
        figures = {"ratio_steady": steady["pipeline"] / steady["direct"], "ratio_e2e": e2e["pipeline"] / e2e["direct"]}
        print(f"ratio pipeline/direct: {figures['ratio_steady']:.2f} steady state (goal >= 0.8), "
              f"{figures['ratio_e2e']:.2f} end to end")
        print("JSON " + json.dumps({"images": n, "results": res, "steady_captions_per_s": steady,
                                    "e2e_captions_per_s": e2e, **figures}))
        return {**{f"steady_captions_per_s_{side}": v for side, v in steady.items()},
                **{f"e2e_captions_per_s_{side}": v for side, v in e2e.items()}, **figures}

    side_by_side(measure, args.busy, headline=["ratio_steady"], seconds=args.busy_seconds)


if __name__ == "__main__":
    main()
