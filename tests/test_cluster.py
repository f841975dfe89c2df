"""cluster/: the launcher YAML validates against the schema Ray ships, the KubeRay manifests carry what KubeRay
needs, every per-stage config loads into its stage's config; and stages run as `ray job submit` jobs on a real
two-node Ray cluster on loopback addresses (head 127.0.0.2 with the dashboard, worker node 127.0.0.3)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from cluster_fixtures import HEAD_IP, RAY, WORKER_IP, cluster_env, two_node_cluster

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
RAY_VERSION = "2.60.0"

# cluster/<file>.yaml -> the stage (uniqa.stages) that reads it (a config file may not name its stage).
STAGE_CONFIGS = {
    "caption-vllm.yaml": "caption",
    "purify.yaml": "purify",
    "corpus.yaml": "corpus",
    "pretrain.yaml": "pretrain",
    "pretrain-official.yaml": "pretrain",
    "features.yaml": "features",
    "adapt.yaml": "adapt",
    "score.yaml": "score",
    "filter.yaml": "filter",
    "evaluate.yaml": "evaluate",
}
MANIFESTS = {"aws-gpu.yaml", "kuberay-raycluster.yaml", "kuberay-rayjob.yaml"}


def load(name: str) -> dict:
    with open(CLUSTER / name) as f:
        return yaml.safe_load(f)


def test_every_cluster_file_is_known():
    assert {p.name for p in CLUSTER.glob("*.yaml")} == set(STAGE_CONFIGS) | MANIFESTS


def test_launcher_config_validates_against_rays_schema():
    import jsonschema
    import ray

    with open(Path(ray.__file__).parent / "autoscaler" / "ray-schema.json") as f:
        schema = json.load(f)
    cfg = load("aws-gpu.yaml")
    jsonschema.validate(cfg, schema)
    # Ray's own check, after it fills in the provider's defaults (what `ray up` does before launching)
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(cfg))
    nodes = cfg["available_node_types"]
    assert cfg["provider"]["type"] == "aws" and nodes[cfg["head_node_type"]].get("max_workers", 0) == 0
    workers = [n for name, n in nodes.items() if name != cfg["head_node_type"]]
    assert len(workers) == 1 and workers[0]["min_workers"] == 0 and workers[0]["max_workers"] >= 2  # autoscaling
    assert workers[0]["node_config"]["InstanceType"].startswith(("g", "p"))  # a GPU instance type
    assert any("pip install" in c and "uniqa" in c for c in cfg["setup_commands"])  # installs this repository
    assert any(f"ray[default,data,train,tune]=={RAY_VERSION}" in c for c in cfg["setup_commands"])
    # a broken config fails the same validation (the test can fail)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**cfg, "max_workers": "eight"}, schema)


def _check_ray_cluster_spec(spec: dict) -> None:
    assert spec["rayVersion"] == RAY_VERSION
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0"  # job submission reaches the head's dashboard
    assert head["template"]["spec"]["containers"][0]["image"]
    (gpu,) = spec["workerGroupSpecs"]
    assert gpu["groupName"] and gpu["minReplicas"] == 0 and gpu["maxReplicas"] >= 2
    limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1


def test_kuberay_manifests():
    cluster = load("kuberay-raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert cluster["metadata"]["name"] and cluster["spec"]["enableInTreeAutoscaling"] is True
    _check_ray_cluster_spec(cluster["spec"])
    job = load("kuberay-rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["entrypoint"] == "python pipelines/score.py --config cluster/score.yaml"
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    _check_ray_cluster_spec(job["spec"]["rayClusterSpec"])


def resolve_config(name: str, sets: tuple[str, ...] = ()):
    from uniqa.stagecli import resolve
    from uniqa.stages import STAGES

    command = STAGES[STAGE_CONFIGS[name]]
    args = argparse.Namespace(config=str(CLUSTER / name), set=list(sets), out=None,
                              **{arg.dest: None for arg in (*command.inputs, *command.options)})
    return command, *resolve(command, args)


@pytest.mark.parametrize("name", sorted(STAGE_CONFIGS))
def test_stage_config_loads_into_its_stage(name):
    command, inputs, out, cfg = resolve_config(name)
    assert type(cfg) is command.config
    assert out.startswith("s3://BUCKET/")  # paper-scale runs: outputs and ...
    flat = [v for value in inputs if value for v in (value if isinstance(value, list) else [value])]
    assert flat and all(v.startswith("s3://BUCKET/") for v in flat)  # ... inputs on S3
    with open(CLUSTER / name) as f:
        text = f.read()
    assert f"pipelines/{name.split('-')[0].split('.')[0]}.py --config cluster/{name}" in text  # says how to submit


def test_paper_scale_values():
    _, _, _, pretrain = resolve_config("pretrain.yaml")
    assert (pretrain.model, pretrain.batch_size, pretrain.lr, pretrain.weight_decay) == (
        "ViT-B-16-quickgelu", 256, 5e-6, 0.2)
    assert (pretrain.beta1, pretrain.beta2, pretrain.eps, pretrain.use_gpu) == (0.9, 0.98, 1e-6, True)
    _, _, _, adapt = resolve_config("adapt.yaml")
    assert (adapt.epochs, adapt.batch_size, adapt.lr, adapt.weight_decay, adapt.splits) == (
        20, 8, 2e-4, 0.0, tuple(range(10)))
    _, _, _, features = resolve_config("features.yaml")
    assert (features.test_views, features.train_views, features.seed) == ("crops10", adapt.train_views, adapt.seed)
    assert features.model == adapt.model == "s3://BUCKET/pretrain/uniqa-vitb16/final"  # pretrain.yaml's result
    _, _, _, purify = resolve_config("purify.yaml")
    assert purify.keep == 5 and purify.embedder.model == "ViT-B-16-quickgelu"
    _, inputs, _, _ = resolve_config("corpus.yaml")
    assert inputs[2] == ["s3://BUCKET/purified/ava"]  # purify.yaml's out
    _, _, _, score = resolve_config("score.yaml")
    assert score.views == "crops10"


def test_a_bad_value_in_a_stage_config_is_refused():
    from uniqa.errors import UniqaError

    with pytest.raises(UniqaError, match="one rule"):
        resolve_config("filter.yaml", ("where=quality >= 0.5",))  # and top_fraction from the file


# --- a real two-node cluster and `ray job submit`


def submit(dashboard: str, args: list[str], timeout: float, env: dict | None = None) -> tuple[str, str, float]:
    """`ray job submit --working-dir . -- python ...` from the repository root (``env``: the job's environment
    variables), waiting for the job; returns (submission id, the job's output, seconds). The job is stopped if it
    outlives ``timeout``."""
    runtime = ["--runtime-env-json", json.dumps({"env_vars": env})] if env else []
    cmd = [RAY, "job", "submit", "--address", dashboard, "--working-dir", ".", *runtime, "--", "python", *args]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=cluster_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        found = re.search(r"raysubmit_\w+", output)
        if found:
            subprocess.run([RAY, "job", "stop", "--address", dashboard, found.group(0)], env=cluster_env(),
                           capture_output=True, timeout=60)
        pytest.fail(f"job did not finish in {timeout} s:\n{output[-4000:]}")
    seconds = time.monotonic() - start
    found = re.search(r"raysubmit_\w+", output)
    assert found, output[-4000:]
    assert proc.returncode == 0 and f"Job '{found.group(0)}' succeeded" in output, output[-4000:]
    return found.group(0), output, seconds


def job_placement(dashboard: str, submission_id: str) -> dict[str, set[str]]:
    """Task / actor name -> the node IPs it ran on, for one job (Ray's state API on the dashboard)."""
    from ray.job_submission import JobSubmissionClient
    from ray.util.state import list_actors, list_nodes, list_tasks

    job_id = JobSubmissionClient(dashboard).get_job_info(submission_id).job_id
    ips = {n.node_id: n.node_ip for n in list_nodes(address=dashboard)}
    where: dict[str, set[str]] = defaultdict(set)
    for task in list_tasks(address=dashboard, filters=[("job_id", "=", job_id)], limit=10_000,
                           raise_on_missing_output=False):
        if task.node_id in ips:
            where[task.name].add(ips[task.node_id])
    for actor in list_actors(address=dashboard, filters=[("job_id", "=", job_id)], detail=True, limit=10_000,
                             raise_on_missing_output=False):
        ip = ips.get(actor.node_id)
        if ip:
            where[actor.class_name].add(ip)
    return dict(where)


def log_ips(output: str, name: str) -> set[str]:
    """Node IPs of ``name`` processes in a job's output: Ray prefixes a line of a worker on another node than the
    driver's with ``(NAME pid=N, ip=IP)`` and one on the driver's node with ``(NAME pid=N)``."""
    ips = set()
    for m in re.finditer(r"\(([^()]*\)?[^()]*) pid=\d+(?:, ip=([\d.]+))?\)", output):
        if name in m.group(1):
            ips.add(m.group(2) or HEAD_IP)
    return ips


@pytest.fixture(scope="module")
def dashboard_cluster(tmp_path_factory):
    """Head (3 CPUs, dashboard on 127.0.0.2) + worker node (3 CPUs, ``worker_node``): a score actor or Train
    worker asking for 2 CPUs fits once per node, so two of them must use both nodes."""
    logs = tmp_path_factory.mktemp("cluster_logs")
    with two_node_cluster(num_cpus=3, dashboard=True, log_dir=logs, object_store=150_000_000) as cluster:
        print(f"cluster up in {cluster.start_seconds:.1f} s")
        yield cluster


def test_working_dir_package_stays_small():
    """What `--working-dir .` uploads: the repository minus .gitignore'd paths (.venv, runs, ...)."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    size = sum((ROOT / f).stat().st_size for f in files if (ROOT / f).is_file())
    assert not any(f.startswith((".venv/", "runs/")) for f in files)
    assert size < 20 * 2**20, f"working dir upload is {size / 2**20:.1f} MiB"


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_score_job_on_two_nodes(dashboard_cluster, tmp_path):
    from zoo import good_images

    from uniqa.schema import scores_schema

    images = good_images(tmp_path / "images", 8)
    listing = tmp_path / "images.txt"
    listing.write_text("\n".join(images) + "\n")
    out = tmp_path / "scores"
    sid, output, seconds = submit(dashboard_cluster.dashboard, [
        "pipelines/score.py", "--input", str(listing), "--out", str(out), "--model", "uniqa-tiny", "--views", "full",
        "--actors", "2", "--batch-size", "1", "--set", "num_cpus=2", "--set", "decode_cpus=0.5",
        "--set", "rows_per_block=2", "--set", "rows_per_file=4"], timeout=600,
        # Ray Data starts both model actors before any row goes to one: a 2-CPU actor fits once per 3-CPU node, so
        # they sit on both nodes whatever the load (without it, a busy machine ran all 8 rows on the first actor)
        env={"RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S": "300"})
    print(f"score job: {seconds:.1f} s")
    assert "score: 8 images written (0 with errors)" in output and "rows out 8 / rows in 8 (complete)" in output
    table = pq.ParquetDataset(str(out)).read()
    assert table.num_rows == 8 and sorted(table["image_uri"].to_pylist()) == sorted(images)
    assert table.schema.names == scores_schema(("quality", "aesthetics"), False).schema.names
    assert table["quality"].null_count == 0 and all(0 <= q <= 1 for q in table["quality"].to_pylist())
    with open(out / "_summary.json") as f:
        assert json.load(f)["rows_out"] == 8
    where = job_placement(dashboard_cluster.dashboard, sid)
    print("score job placement:", where)
    # the job's model actors ran on both nodes (both started before the first row, one per node). Which node runs
    # which row is Ray Data's choice and may depend on load, so rows are not asserted per node.
    assert where.get("MapWorker(MapBatches(ScoreStage))", set()) == {HEAD_IP, WORKER_IP}, where


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_pretrain_job_on_two_nodes(dashboard_cluster, tmp_path):
    from tests.test_pretrain import write_corpus

    corpus = write_corpus(tmp_path, n_images=16)
    out = tmp_path / "pretrain"
    steps = 4
    sid, output, seconds = submit(dashboard_cluster.dashboard, [
        "pipelines/pretrain.py", "--corpus", corpus, "--out", str(out), "--model", "uniqa-tiny", "--workers", "2",
        "--batch-size", "8", "--steps", str(steps), "--set", "cpus_per_worker=2", "--set", "decode_cpus=0.5",
        "--set", "threads=1", "--set", "warmup_steps=1", "--set", "checkpoint_every=2"], timeout=600)
    print(f"pretrain job: {seconds:.1f} s")
    with open(out / "_summary.json") as f:
        summary = json.load(f)
    assert (summary["rows_in"], summary["rows_out"]) == (steps, steps), summary
    with open(out / "metrics.jsonl") as f:
        assert [json.loads(line)["step"] for line in f] == list(range(1, steps + 1))
    assert (out / "final" / "openai.pt").is_file()
    where = job_placement(dashboard_cluster.dashboard, sid)
    print("pretrain job placement:", where)
    workers = log_ips(output, "RayTrainWorker") | set().union(
        *(ips for name, ips in where.items() if "RayTrainWorker" in name))
    assert workers == {HEAD_IP, WORKER_IP}, (where, output[-3000:])  # one 2-CPU Train worker per node
    assert os.path.isdir(out / "final")
