"""Listing an ``s3://`` prefix of N objects: ``storage.iter_files`` pages vs a whole listing, side by side in one run.

    python benchmarks/s3_listing.py [--objects 100000] [--rounds 3] [--busy 1]

A local S3 server (moto, its own process on 127.0.0.1) gets N one-byte objects under ``s3://bench/images/dNNNN/``
(1,000 a folder, as ``benchmarks/scale.py`` lays out images), put once by 16 threads. Then, round by round
(the two ways alternate, so machine load hits both alike):

- **streamed**: ``uniqa.storage.iter_files(prefix, page_size=1000)``, what ``uniqa score --input s3://...`` lists
  with (in a Ray read task, a block per 10,000 names, while scoring runs): the time to its first page of 1,000
  URIs, i.e. when the first block of work can exist, and to its end;
- **whole**: pyarrow's recursive ``FileSelector``, what a driver that lists everything before starting does: no
  name before the last page.

And once each in a fresh process (set-up done first): the most Python memory the listing held at a time
(``tracemalloc``: botocore's parsed page and the names; the ``ru_maxrss`` of a process that imported boto3 and
pyarrow does not move for 100,000 names). Headlines: time to the first page / whole listing (small: work starts
after one ListObjectsV2 page whatever N is) and peak memory streamed / whole (flat in N against growing with it);
also the streamed listing's end / whole (its cost in all).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/ (also when run with runpy)
from neighbours import add_busy_argument, side_by_side  # noqa: E402

BUCKET, PREFIX, PER_FOLDER = "bench", "images", 1000


def start_server() -> tuple[subprocess.Popen, str]:
    """moto's S3 server in a process of its own (so the client does not share its interpreter) on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, endpoint
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the moto S3 server did not start")


def put_objects(client, n: int) -> float:
    """N one-byte objects, 1,000 a folder -> seconds taken."""
    start = time.perf_counter()
    client.create_bucket(Bucket=BUCKET)

    def put(i: int) -> None:
        client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/d{i // PER_FOLDER:04d}/i{i:07d}.jpg", Body=b"x")

    with ThreadPoolExecutor(16) as pool:
        for _ in pool.map(put, range(n), chunksize=256):
            pass
    return time.perf_counter() - start


def streamed(uri: str) -> tuple[float, float, int]:
    from uniqa import storage

    start, first, count = time.perf_counter(), None, 0
    for page in storage.iter_files(uri, (".jpg",), page_size=1000):
        first = first if first is not None else time.perf_counter() - start
        count += len(page)
    return first, time.perf_counter() - start, count


def whole(uri: str) -> tuple[float, int]:
    import pyarrow.fs as pafs

    from uniqa import storage

    fs, path = storage.resolve(uri)
    start = time.perf_counter()
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    names = [f"s3://{i.path}" for i in infos if i.type == pafs.FileType.File and i.path.endswith(".jpg")]
    return time.perf_counter() - start, len(names)


def child(way: str, uri: str) -> None:
    """In a fresh process: one listing ``way``; prints the peak Python memory it held (MB)."""
    import boto3  # noqa: F401
    import pyarrow.fs  # noqa: F401  (imported before the baseline: not the listing's)

    from uniqa import storage  # noqa: F401

    tracemalloc.start()
    (streamed if way == "streamed" else whole)(uri)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"peak_mb": traced / 2**20}))


def memory(way: str, uri: str) -> dict:
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", way, uri], capture_output=True,
                         text=True, check=True, env=os.environ)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    """Returns the idle measurement."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=100_000, help="N: objects under the prefix")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("WAY", "URI"), help=argparse.SUPPRESS)
    add_busy_argument(ap)
    args = ap.parse_args(argv)
    if args.child:
        return child(*args.child)

    import boto3

    server, endpoint = start_server()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "testing")
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        put = put_objects(client, args.objects)
        uri = f"s3://{BUCKET}/{PREFIX}"
        print(f"{args.objects:,} objects under {uri} ({args.objects // PER_FOLDER:,} folders), put in {put:.0f} s "
              f"on {endpoint} (moto, its own process)", flush=True)

        def measure() -> dict:
            firsts, ends, wholes = [], [], []
            for _ in range(args.rounds):
                first, end, count = streamed(uri)
                took, listed = whole(uri)
                assert count == listed == args.objects, (count, listed, args.objects)
                firsts.append(first)
                ends.append(end)
                wholes.append(took)
            mem = {way: memory(way, uri) for way in ("streamed", "whole")}
            r = {"first_page_s": statistics.median(firsts), "streamed_s": statistics.median(ends),
                 "whole_s": statistics.median(wholes),
                 **{f"{way}_{k}": v for way, m in mem.items() for k, v in m.items()}}
            r |= {"first_over_whole": r["first_page_s"] / r["whole_s"], "streamed_over_whole": r["streamed_s"] /
                  r["whole_s"], "memory_streamed_over_whole": r["streamed_peak_mb"] / r["whole_peak_mb"]}
            for way in ("streamed", "whole"):
                took = (f"first page of 1,000 after {r['first_page_s']:.2f} s, all after {r['streamed_s']:.1f} s"
                        if way == "streamed" else f"every name after {r['whole_s']:.1f} s")
                print(f"{way:8s}: {took}; peak Python memory {r[f'{way}_peak_mb']:.1f} MB")
            print(f"first page / whole     : {r['first_over_whole']:.4f}   (median of {args.rounds} rounds)")
            print(f"streamed / whole       : {r['streamed_over_whole']:.2f}   (the listing's cost in all)")
            print(f"peak memory streamed / whole: {r['memory_streamed_over_whole']:.3f}")
            return r

        return side_by_side(measure, args.busy, headline=["first_over_whole", "memory_streamed_over_whole"],
                            seconds=args.busy_seconds)["idle"]
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
