"""Shared fixtures: one loopback S3 server and one Ray session for the whole test run."""

from __future__ import annotations

import os
import uuid

import pytest

# Before anything imports ray / huggingface: no auth tokens, no usage stats, no hub downloads.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on 127.0.0.1; sets AWS_ENDPOINT_URL for this process and Ray workers."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    yield endpoint
    server.stop()


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh, empty bucket: returns ``s3://<bucket>``."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def ray_session(s3_server):
    """One Ray session for all Ray tests (started after the S3 server so workers see its endpoint)."""
    import ray

    from uniqa.runtime import local_ray_options

    if not ray.is_initialized():  # on loopback, like every local run (uniqa.runtime.keep_local_ray_on_loopback)
        ray.init(**local_ray_options(num_cpus=2, object_store_memory=512 * 2**20))
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory) -> str:
    """The embedded sample corpus for seed 0, built once per session (~10-20 s on 2 cores): returns DIR,
    holding DIR/iqa (KADID-10k format) and DIR/iaa (AVA format). Treat it as read-only."""
    from uniqa.data.sample import build_sample

    out = str(tmp_path_factory.mktemp("sample_corpus"))
    build_sample(out, seed=0)
    return out


@pytest.fixture(scope="session")
def small_kadid(sample_corpus, tmp_path_factory) -> str:
    """A KADID-format root of the sample's first 8 references x its first 9 distortions x 5 levels (360 images,
    the images linked, not copied): `uniqa data prepare kadid10k` puts 6 references in train and 2 in test, the
    size tests that run whole protocols on 2 cores were made for."""
    import csv

    root = tmp_path_factory.mktemp("small_kadid")
    (root / "images").symlink_to(os.path.join(sample_corpus, "iqa", "images"), target_is_directory=True)
    with open(os.path.join(sample_corpus, "iqa", "dmos.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["ref_img"][1:3]) <= 8 and int(r["dist_img"][4:6]) <= 9]
    with open(root / "dmos.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["dist_img", "ref_img", "dmos", "var"])
        writer.writeheader()
        writer.writerows(rows)
    return str(root)
