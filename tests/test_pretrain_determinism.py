"""Pre-training is a function of the seed alone (2 workers): the same run on an idle machine and beside a
CPU-burning process ends with the same weights, and so does a run stopped after a checkpoint and resumed (each rank
trains on its own seeded stream and resumes after its own last row). The corpus is small enough that the hashed
rank split is unbalanced: the run adds epochs for the short rank instead of running out of data."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager

import pytest
import torch
from train_faults import failing_at

import uniqa.training.run
from tests.test_pretrain import write_corpus
from tests.test_pretrain_ray import config, final_weights, metric_steps
from uniqa.training.run import run_pretrain

pytestmark = [pytest.mark.ray, pytest.mark.slow]

STEPS = 40
IMAGES = 20
BURN = "import time\nt = time.time()\nwhile time.time() - t < 300:\n    pass"  # bounded even if never killed


def two_workers(**kw):
    return config(num_workers=2, batch_size=8, steps=STEPS, checkpoint_every=10, warmup_steps=5, **kw)


@contextmanager
def cpu_burner():
    """A busy core beside the run (started and stopped here)."""
    proc = subprocess.Popen([sys.executable, "-c", BURN])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


def assert_same_weights(run_a: str, run_b: str) -> None:
    want, got = final_weights(run_a), final_weights(run_b)
    assert set(want) == set(got)
    different = [key for key in want if not torch.allclose(got[key], want[key], atol=1e-6, rtol=0)]
    assert not different, f"{len(different)} of {len(want)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_corpus(tmp_path_factory.mktemp("determinism"), n_images=IMAGES)


@pytest.fixture(scope="module")
def idle(ray_session, corpus, tmp_path_factory) -> str:
    run = str(tmp_path_factory.mktemp("idle"))
    summary = run_pretrain(corpus, run, two_workers(), progress=False)
    assert summary.complete and metric_steps(run) == list(range(1, STEPS + 1))
    # 40 steps x 8 rows = 16 epochs of 20 images, but not 160 rows on each rank: the short rank got more epochs
    assert summary.details["stream_epochs"] > STEPS * 8 // IMAGES
    return run


@pytest.mark.timeout(900)
def test_two_worker_run_is_the_same_on_an_idle_and_a_busy_machine(idle, corpus, tmp_path):
    with cpu_burner():
        busy = run_pretrain(corpus, str(tmp_path / "busy"), two_workers(), progress=False)
    assert busy.complete and metric_steps(str(tmp_path / "busy")) == list(range(1, STEPS + 1))
    assert_same_weights(idle, str(tmp_path / "busy"))


@pytest.mark.timeout(900)
def test_two_worker_run_stopped_and_resumed_equals_the_uninterrupted_one(idle, corpus, tmp_path, monkeypatch):
    run = str(tmp_path / "resumed")
    cfg = two_workers(max_failures=0)
    monkeypatch.setattr(uniqa.training.run, "train_worker", failing_at(25))
    with cpu_burner():
        with pytest.raises(Exception, match="injected fault at step 25"):
            run_pretrain(corpus, run, cfg, progress=False)
        assert metric_steps(run) == list(range(1, 21))  # the last checkpoint: step 20
        summary = run_pretrain(corpus, run, cfg, progress=False)
    assert summary.complete and summary.already_done == 20 and metric_steps(run) == list(range(1, STEPS + 1))
    assert_same_weights(idle, run)
