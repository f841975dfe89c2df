"""Scale: ``uniqa caption``, ``uniqa score`` and ``uniqa filter`` on N/10 and N real images, each run as the
user runs it (the ``uniqa`` command, project defaults) against one Ray cluster started here, with flat-memory,
throughput and resume figures; optionally a SIGKILL halfway through scoring and a resume.

    python benchmarks/scale.py [--images 100000] [--stages caption,score,filter] [--kill-at 0.5]
                               [--work runs/bench_scale] [--busy N]

Makes N seeded 64-96 px JPEGs (crops of the embedded sample's reference tiles, uniqa.data.sample, each with one
of uniqa.data.distortions' distortions at a random level, re-encoded at a random quality) in WORK/images/dNNNN/
(1,000 a folder) and a manifest WORK/manifest/ (one part file a folder, tasks quality and aesthetics). Making them
is a Ray Data job of one task per folder that resumes: a folder whose manifest part exists is skipped (the part is
written last, atomically). N/10 reuses the first folders (links under WORK/n<N/10>/).

Then, at each size, with ``ray start --head`` on 127.0.0.1 joined by every command (``--ray-address``):
``uniqa caption --backend attributes``, ``uniqa score --model uniqa-tiny --heads quality,aesthetics`` on the
manifest and on the image folder, ``uniqa filter --top-fraction 0.3 --by quality --group-by folder`` on the
manifest's scores. Each is run into a fresh folder, then rerun unchanged (everything done). Prints per stage and
size: rows/s end to end (process start to exit) and steady (part files' mtimes and footer row counts, the first
file excluded), time to the first output file, the driver's peak RSS (psutil, every 0.2 s), the peak of Ray's
object store use and the bytes spilled during the run (the raylet's store stats), the output files, and the
rerun's time. Then the ratios and goals: large/small steady throughput >= 0.9, driver peak RSS large/small
<= 1.10, rerun-when-done / run <= 5% (at each size). Writes the figures to WORK/scale.json, merged with those an
earlier invocation at the same --images left there (a 1M table can be made a stage at a time, e.g. ``--stages
caption``, then ``--stages score/manifest --kill-at 0.5``); logs to WORK/logs/.

``--kill-at F`` also scores the large size again, SIGKILLs the score driver when F of the rows are written
(footers of part-*.parquet), reruns the same command, and checks with pyarrow (group_by / joins, no Python set of
ids): every manifest id exactly once, and the scores equal to the uninterrupted run's (max |difference|).
``--busy N`` runs the whole measurement beside N CPU-burning processes (not idle and busy side by side: the run
is long), and says so.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from neighbours import Neighbours, add_busy_argument  # noqa: E402

from uniqa import storage  # noqa: E402
from uniqa.schema import score_columns, validate_manifest  # noqa: E402
from uniqa.tables import count_rows, dataset_schema, read_columns  # noqa: E402

PER_FOLDER = 1000
UNIQA = str(Path(sys.executable).with_name("uniqa"))
ENV = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled",
       "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
GOALS = {"throughput": 0.9, "rss": 1.10, "rerun": 0.05}
STAGES = ("caption", "score", "score/manifest", "score/folder", "filter")


# ------------------------------------------------------------------------------------------- images


def make_folder(row: dict, root: str, n: int, seed: int, tiles: np.ndarray, sides: dict) -> dict:
    """One Ray Data task: images d<f>/<id>.jpg of folder ``row["id"]``, then its manifest part (atomically)."""
    from PIL import Image

    from uniqa.data.distortions import DISTORTIONS, apply, dmos
    from uniqa.data.levels import levels

    f = int(row["id"])
    ids = range(f * PER_FOLDER, min(n, (f + 1) * PER_FOLDER))
    part = f"{root}/manifest/part-d{f:04d}.parquet"
    if storage.exists(part) and pq.read_metadata(part).num_rows == len(ids):
        return {"folder": f, "rows": len(ids), "made": 0}
    os.makedirs(f"{root}/images/d{f:04d}", exist_ok=True)
    cols: dict[str, list] = {k: [] for k in ("image_id", "image_uri", "task", "mos", "group")}
    for i in ids:
        rng = np.random.default_rng([seed, i])
        c, side = int(rng.integers(len(tiles))), int(rng.integers(64, 97))
        y, x = rng.integers(0, tiles.shape[1] - side + 1, 2)
        img = tiles[c, y:y + side, x:x + side][:, :: 1 if rng.random() < 0.5 else -1]
        d, level = DISTORTIONS[int(rng.integers(len(DISTORTIONS)))], int(rng.integers(1, 6))
        img = np.ascontiguousarray(apply(d, img, level, rng))
        uri = f"{root}/images/d{f:04d}/{i:07d}.jpg"
        Image.fromarray(img).save(uri, "JPEG", quality=int(rng.integers(60, 96)))
        for k, v in zip(cols, (f"{i:07d}", uri, ("quality", "aesthetics")[i % 2],
                               dmos(d, level, float(rng.uniform(-0.08, 0.08))), f"I{c + 1:02d}")):
            cols[k].append(v)
    norm = (np.array(cols["mos"]) - 1.0) / 4.0
    table = pa.table({**cols, "dataset": ["scale"] * len(ids), "mos_norm": norm, "level": levels(norm),
                      **{s: [sides[s][g] for g in cols["group"]] for s in sides}})
    tmp = f"{root}/manifest/_tmp-d{f:04d}.parquet"
    pq.write_table(validate_manifest(table, part), tmp)
    os.replace(tmp, part)
    return {"folder": f, "rows": len(ids), "made": 1}


def make_images(work: Path, n: int, seed: int, address: str) -> None:
    import ray

    from uniqa.data.levels import seeded_splits
    from uniqa.data.sample import content_image, contents
    from uniqa.runtime import init_ray

    folders = -(-n // PER_FOLDER)
    (work / "manifest").mkdir(parents=True, exist_ok=True)
    have = sum(1 for p in (work / "manifest").glob("part-d*.parquet") if int(p.stem[6:]) < folders)
    print(f"making {n} images in {folders} folders under {work}/images ({have} folders already made)", flush=True)
    tiles = np.stack([content_image(c) for c in contents()])  # 40 reference tiles, 128 px
    groups = [f"I{c + 1:02d}" for c in range(len(tiles))]
    sides = {s: dict(zip(groups, v)) for s, v in seeded_splits(groups, seed=seed).items()}
    start = time.perf_counter()
    init_ray(address)
    stats = ray.data.range(folders, override_num_blocks=folders).map(
        make_folder, fn_kwargs=dict(root=str(work.resolve()), n=n, seed=seed, tiles=tiles, sides=sides),
        num_cpus=1).to_pandas()
    ray.shutdown()
    assert stats["rows"].sum() == n == count_rows(str(work / "manifest")), "manifest rows differ from --images"
    print(f"made {int(stats['made'].sum())} folders in {time.perf_counter() - start:.1f} s", flush=True)


def size_inputs(work: Path, n: int, size: int) -> tuple[Path, Path]:
    """(manifest, image folder) of the first ``size`` images: WORK's own for n, else links under WORK/n<size>."""
    if size == n:
        return work / "manifest", work / "images"
    base = work / f"n{size}"
    if not (base / "manifest" / "_done").exists():
        shutil.rmtree(base, ignore_errors=True)
        for f in range(-(-size // PER_FOLDER)):
            name, rows = f"d{f:04d}", min(PER_FOLDER, size - f * PER_FOLDER)
            part, folder = work / "manifest" / f"part-{name}.parquet", (work / "images" / name).resolve()
            (base / "manifest").mkdir(parents=True, exist_ok=True)
            (base / "images").mkdir(parents=True, exist_ok=True)
            if rows == PER_FOLDER:
                os.link(part, base / "manifest" / part.name)
                (base / "images" / name).symlink_to(folder)
            else:  # a partial folder: the part's first rows, and links to their files
                table = pq.read_table(part).slice(0, rows)
                pq.write_table(table, base / "manifest" / part.name)
                (base / "images" / name).mkdir()
                for uri in table["image_uri"].to_pylist():
                    (base / "images" / name / os.path.basename(uri)).symlink_to(uri)
        (base / "manifest" / "_done").touch()
    return base / "manifest", base / "images"


# -------------------------------------------------------------------------------------- Ray cluster


def start_head(log: Path) -> tuple[subprocess.Popen, str]:
    """``ray start --head --block`` on 127.0.0.1 (kept: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, see
    uniqa.runtime.keep_local_ray_on_loopback) in its own session; returns it and its address."""
    from ray._private.internal_api import get_state_from_address

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"127.0.0.1:{port}"
    head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
                             "--node-ip-address=127.0.0.1", f"--port={port}", "--include-dashboard=false",
                             "--disable-usage-stats"], stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env=ENV, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if any(node["Alive"] for node in get_state_from_address(address).node_table()):
                return head, address
        except Exception:
            pass
        if head.poll() is not None:
            break
        time.sleep(1)
    stop_head(head)
    raise SystemExit(f"ray start --head did not come up; see {log}")


def stop_head(head: subprocess.Popen) -> None:
    """SIGTERM to the head's process group (it drains, up to 30 s), then SIGKILL whatever of its session is left
    (workers run in their own process groups, in the same session)."""
    try:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=45)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and os.getsid(p.pid) == head.pid:
                p.kill()
        except (ProcessLookupError, psutil.Error):
            pass


@functools.cache
def _state(address: str):
    from ray._private.internal_api import get_state_from_address

    return get_state_from_address(address)


def store_stats(address: str):
    """The cluster's object store figures (``object_store_bytes_used``, ``spilled_bytes_total``, ...): what
    ``ray memory --stats-only`` prints, as numbers."""
    from ray._private.internal_api import get_memory_info_reply

    return get_memory_info_reply(_state(address), timeout_seconds=10).store_stats


# ------------------------------------------------------------------------------------------- runs


def part_files(out: Path) -> list[tuple[float, int]]:
    """(mtime, rows) of every part-*.parquet below ``out`` (filter writes kept/ and rejected/), by mtime."""
    return sorted((p.stat().st_mtime, pq.read_metadata(p).num_rows) for p in out.rglob("part-*.parquet"))


def run(cmd: list[str], out: Path, log: Path, address: str, kill_rows: int | None = None) -> dict:
    """Run ``cmd`` to its end (or SIGKILL it once ``kill_rows`` rows are in ``out``'s part files), polling the
    driver's RSS and the object store every 0.2 s."""
    spilled0 = store_stats(address).spilled_bytes_total
    wall, start = time.time(), time.perf_counter()
    with log.open("a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=ENV)
    proc, rss, store, seen, killed = psutil.Process(p.pid), 0, 0, {}, None
    while p.poll() is None:
        try:
            rss = max(rss, proc.memory_info().rss)
        except psutil.Error:
            pass
        store = max(store, store_stats(address).object_store_bytes_used)
        if kill_rows is not None:
            for part in out.glob("part-*.parquet"):
                if part.name not in seen:
                    seen[part.name] = pq.read_metadata(part).num_rows
            if killed is None and sum(seen.values()) >= kill_rows:
                p.send_signal(signal.SIGKILL)
                killed = sum(seen.values())
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    parts = part_files(out)
    done = out / "_summary.json"
    summary = json.loads(done.read_text()) if killed is None and done.exists() else {}
    steady = (sum(r for _, r in parts[1:]) / (parts[-1][0] - parts[0][0])
              if len(parts) > 2 and parts[-1][0] > parts[0][0] else float("nan"))
    rows = summary.get("rows_written", 0)
    return {"rc": p.returncode, "seconds": seconds, "rows": rows, "e2e": rows / seconds, "steady": steady,
            "first_file_s": parts[0][0] - wall if parts else float("nan"), "driver_rss_mb": rss / 2**20,
            "store_peak_mb": store / 2**20,
            "spilled_mb": (store_stats(address).spilled_bytes_total - spilled0) / 2**20, "files": len(parts),
            "complete": summary.get("complete"), "already_done": summary.get("already_done"), "killed_at": killed}


def commands(work: Path, n: int, size: int, address: str) -> dict[str, tuple[list[str], Path]]:
    manifest, images = size_inputs(work, n, size)
    out = work / "out" / f"n{size}"
    score = ["score", "--model", "uniqa-tiny", "--heads", "quality,aesthetics"]
    cmds = {"caption": (["caption", "--manifest", manifest, "--backend", "attributes"], out / "caption"),
            "score/manifest": ([*score, "--input", manifest], out / "score_manifest"),
            "score/folder": ([*score, "--input", images], out / "score_folder"),
            "filter": (["filter", "--scores", out / "score_manifest", "--top-fraction", "0.3", "--by", "quality",
                        "--group-by", "folder"], out / "filter")}
    return {k: ([UNIQA, *map(str, c), "--out", str(o), "--ray-address", address], o) for k, (c, o) in cmds.items()}


def complete(out: Path) -> bool:
    done = out / "_summary.json"
    return done.exists() and json.loads(done.read_text())["complete"]


def measure(work: Path, n: int, sizes: list[int], stages: list[str], address: str) -> dict:
    results: dict = {}
    for size in sizes:
        for name, (cmd, out) in commands(work, n, size, address).items():
            if name not in stages and name.split("/")[0] not in stages:
                continue
            if name == "filter" and not complete(Path(cmd[cmd.index("--scores") + 1])):
                print("filter: scoring the manifest first (not measured)", flush=True)
                scores_cmd, scores_out = commands(work, n, size, address)["score/manifest"]
                shutil.rmtree(scores_out, ignore_errors=True)
                run(scores_cmd, scores_out, work / "logs" / f"score_manifest_n{size}.log", address)
            print(f"{name} n={size}: {' '.join(cmd)}", flush=True)
            shutil.rmtree(out, ignore_errors=True)
            log = work / "logs" / f"{name.replace('/', '_')}_n{size}.log"
            r = run(cmd, out, log, address)
            again = run(cmd, out, log, address)
            r.update(rerun_s=again["seconds"], rerun_rc=again["rc"], rerun_already_done=again["already_done"])
            print(f"  {r['rows']} rows in {r['seconds']:.1f} s (exit {r['rc']}), rerun {r['rerun_s']:.1f} s "
                  f"(exit {r['rerun_rc']})", flush=True)
            results.setdefault(name, {})[size] = r
    return results


def report(results: dict, sizes: list[int]) -> dict:
    cols = ("rows", "e2e", "steady", "first_file_s", "driver_rss_mb", "store_peak_mb", "spilled_mb", "files",
            "seconds", "rerun_s")
    heads = ("rows", "rows/s e2e", "rows/s steady", "1st file s", "driver MB", "store MB", "spilled MB", "files",
             "run s", "rerun s")
    print(f"\n{'stage':15s} {'n':>8s} " + " ".join(f"{h:>13s}" for h in heads))
    for name, by_size in results.items():
        for size, r in by_size.items():
            print(f"{name:15s} {size:>8d} " + " ".join(f"{r[c]:>13.1f}" if isinstance(r[c], float)
                                                       else f"{r[c]:>13d}" for c in cols))
    ratios: dict = {}
    small, large = sizes
    print(f"\nratios n={large} vs n={small} (goals: steady throughput >= {GOALS['throughput']}, driver RSS <= "
          f"{GOALS['rss']}, rerun-when-done / run <= {GOALS['rerun']:.0%})")
    for name, by_size in results.items():
        if small not in by_size or large not in by_size:
            continue
        a, b = by_size[small], by_size[large]
        figs = {"throughput_steady": b["steady"] / a["steady"], "throughput_e2e": b["e2e"] / a["e2e"],
                "driver_rss": b["driver_rss_mb"] / a["driver_rss_mb"],
                **{f"rerun_n{s}": by_size[s]["rerun_s"] / by_size[s]["seconds"] for s in sizes}}
        held = {"throughput_steady": figs["throughput_steady"] >= GOALS["throughput"],
                "driver_rss": figs["driver_rss"] <= GOALS["rss"],
                **{f"rerun_n{s}": figs[f"rerun_n{s}"] <= GOALS["rerun"] for s in sizes}}
        ratios[name] = {**figs, "pass": held}
        held = {k: v for k, v in held.items() if figs[k] == figs[k]}  # NaN: too few part files to tell
        marks = {k: " n/a" if v != v else " PASS" if held.get(k) else " MISS" if k in held else ""
                 for k, v in figs.items()}
        print(f"{name:15s} " + "  ".join(f"{k} {v:.3f}{marks[k]}" for k, v in figs.items()))
    return ratios


def kill_and_resume(work: Path, n: int, fraction: float, address: str) -> dict:
    """Score the large size, SIGKILL the driver at ``fraction`` of the rows, rerun, check exactly once and equal
    scores against the uninterrupted run (pyarrow only)."""
    cmds = commands(work, n, n, address)
    ref_cmd, ref_out = cmds["score/manifest"]
    if not complete(ref_out):
        print("kill: scoring uninterrupted first (the reference)", flush=True)
        shutil.rmtree(ref_out, ignore_errors=True)
        run(ref_cmd, ref_out, work / "logs" / f"score_manifest_n{n}.log", address)
    out = work / "out" / f"n{n}" / "score_killed"
    cmd = [out.as_posix() if c == str(ref_out) else c for c in ref_cmd]
    shutil.rmtree(out, ignore_errors=True)
    log = work / "logs" / f"score_killed_n{n}.log"
    print(f"kill at {fraction:g}: {' '.join(cmd)}", flush=True)
    first = run(cmd, out, log, address, kill_rows=int(fraction * n))
    resumed = run(cmd, out, log, address)
    manifest = read_columns(str(size_inputs(work, n, n)[0]), ["image_id"])
    heads = score_columns(dataset_schema(str(out)), str(out))
    got = read_columns(str(out), ["image_id", *heads])
    counts = got.group_by("image_id").aggregate([("image_id", "count")])
    missing = manifest.join(counts, "image_id", join_type="left anti").num_rows
    ref = read_columns(str(ref_out), ["image_id", *heads])
    joined = got.join(ref, "image_id", right_suffix="_ref")
    diff = max((pc.max(pc.abs(pc.subtract(joined[h], joined[f"{h}_ref"]))).as_py() or 0.0) for h in heads)
    k = {"rows": got.num_rows, "distinct": counts.num_rows, "duplicates": got.num_rows - counts.num_rows,
         "missing": missing, "max_score_diff": diff, "killed_at_rows": first["killed_at"],
         "killed_after_s": first["seconds"], "rerun_s": resumed["seconds"], "rerun_rc": resumed["rc"],
         "rerun_rows_written": resumed["rows"]}
    ok = k["rows"] == n and k["duplicates"] == 0 and missing == 0 and diff == 0.0
    print(f"\nkill-and-resume n={n}: killed at {k['killed_at_rows']} rows after {k['killed_after_s']:.1f} s"
          f"{'' if first['killed_at'] else ' (the run ENDED before the kill point)'}; rerun {k['rerun_s']:.1f} s "
          f"(exit {k['rerun_rc']}, wrote {k['rerun_rows_written']})\n  rows {k['rows']} (want {n}), duplicates "
          f"{k['duplicates']}, missing ids {missing}, max |score difference| {diff:g}: {'PASS' if ok else 'MISS'}")
    return {**k, "pass": ok}


def finite(x):
    """``x`` with NaN as None (strict JSON)."""
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    return None if isinstance(x, float) and x != x else x


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100_000, help="N: the large size (the small one is N/10)")
    ap.add_argument("--stages", default="caption,score,filter",
                    help="comma-separated, of caption,score,filter (score is score/manifest,score/folder: either "
                         "alone runs one input)")
    ap.add_argument("--kill-at", type=float, default=0.0, help="also SIGKILL scoring at this fraction (0: no)")
    ap.add_argument("--work", default="runs/bench_scale", help="folder for images, outputs, logs and scale.json")
    ap.add_argument("--seed", type=int, default=0)
    add_busy_argument(ap)
    args = ap.parse_args(argv)
    os.environ.update(ENV)  # this process joins the head too (the image job, the store stats)
    stages = [s for s in args.stages.split(",") if s]
    if set(stages) - set(STAGES) or args.images < 10 or not 0 <= args.kill_at < 1:
        ap.error(f"--stages takes {','.join(STAGES)}; --images >= 10; --kill-at in [0, 1)")
    work, sizes = Path(args.work), [args.images // 10, args.images]
    (work / "logs").mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    head, address = start_head(work / "logs" / "ray_head.log")
    print(f"ray head at {address} (pid {head.pid}); {os.cpu_count()} cores", flush=True)
    result = earlier(work / "scale.json", args.images, args.busy)
    invocation = {"stages": stages, "kill_at": args.kill_at, "began": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        make_images(work, args.images, args.seed, address)
        if args.busy:
            print(f"== the whole measurement runs beside {args.busy} CPU-burning process(es) (not idle)")
        with Neighbours(args.busy, args.busy_seconds):
            for name, by_size in measure(work, args.images, sizes, stages, address).items():
                result["runs"].setdefault(name, {}).update({str(k): v for k, v in by_size.items()})
            runs = {name: {int(k): v for k, v in by_size.items()} for name, by_size in result["runs"].items()}
            result["ratios"] = report(runs, sizes)
            if args.kill_at:
                result["kill"] = kill_and_resume(work, args.images, args.kill_at, address)
    finally:
        stop_head(head)
    invocation["seconds"] = time.perf_counter() - began
    result["invocations"].append(invocation)
    (work / "scale.json").write_text(json.dumps(finite(result), indent=1, default=str))
    print(f"\nwall time {invocation['seconds'] / 60:.1f} min; figures in {work / 'scale.json'} (with "
          f"{len(result['invocations']) - 1} earlier invocation(s) at this size)")
    return result


def earlier(path: Path, images: int, busy: int) -> dict:
    """The figures an earlier invocation at the same ``--images`` and ``--busy`` left in ``path``: a long run can
    be made a stage at a time (``--stages caption``, then ``--stages score``...) and reported as one table; a
    stage measured again replaces its earlier figures."""
    fresh = {"images": images, "sizes": [images // 10, images], "busy": busy, "runs": {}, "invocations": []}
    if not path.exists():
        return fresh
    old = json.loads(path.read_text())
    if (old.get("images"), old.get("busy")) != (images, busy):
        return fresh
    if "invocations" not in old:  # written before invocations were kept: one, of its stages
        old["invocations"] = [{"stages": sorted(old.get("runs", {})), "seconds": old.pop("seconds", None)}]
    return {**fresh, **old}


if __name__ == "__main__":
    main()
