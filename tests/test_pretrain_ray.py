"""Pre-training through Ray Train on a tiny corpus: a run completes, skips broken images, exports a model that
scoring reads in both formats; a run stopped after a checkpoint resumes to the same weights as an uninterrupted
one; an injected worker fault is recovered from the last checkpoint (2 workers)."""

from __future__ import annotations

import json

import pytest
import torch
from train_faults import MARKER, failing_at

import uniqa.training.run
from tests.test_pretrain import write_corpus
from uniqa.errors import UniqaError
from uniqa.training.config import PretrainConfig
from uniqa.training.run import run_pretrain

pytestmark = [pytest.mark.ray, pytest.mark.slow]

STEPS = 8


def config(**kw) -> PretrainConfig:
    base = dict(model="uniqa-tiny", batch_size=8, steps=STEPS, checkpoint_every=2, warmup_steps=2,
                cpus_per_worker=0.5, decode_cpus=0.5)  # threads: the policy's, 1 for 0.5 CPU
    return PretrainConfig(**{**base, **kw})


def final_weights(run: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(f"{run}/final/model.safetensors")


def metric_steps(run: str) -> list[int]:
    with open(f"{run}/metrics.jsonl") as f:
        return [json.loads(line)["step"] for line in f if line.strip()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    return write_corpus(tmp_path_factory.mktemp("pretrain"), n_images=24, broken=2)


@pytest.fixture(scope="module")
def uninterrupted(ray_session, corpus, tmp_path_factory) -> tuple[str, object]:
    run = str(tmp_path_factory.mktemp("run_a"))
    return run, run_pretrain(corpus, run, config(), progress=False)


@pytest.mark.timeout(600)
def test_run_completes_skips_broken_images_and_exports(uninterrupted, corpus):
    from uniqa.scoring.api import Scorer

    run, summary = uninterrupted
    assert summary.complete and summary.unit == "steps" and (summary.rows_in, summary.rows_out) == (STEPS, STEPS)
    assert summary.details["images"] == 24 and summary.details["images_skipped"] == 2
    assert summary.details["epochs"] == pytest.approx(STEPS * 8 / 24, abs=1e-3)
    with open(f"{run}/_skipped_images.json") as f:
        assert sorted(r["image_id"] for r in json.load(f)["images"]) == ["broken0", "broken1"]
    assert metric_steps(run) == list(range(1, STEPS + 1))
    with open(f"{run}/metrics.jsonl") as f:
        record = json.loads(f.readline())
    assert set(record) >= {"step", "loss", "lr", "logit_scale", "images_per_s", "epoch"}
    assert record["threads"] == summary.details["threads"] == 1  # read in the Train worker: its 0.5 CPU -> 1
    # the provenance record beside the weights: every usable corpus image id, hashed (uniqa.provenance)
    import pyarrow.parquet as pq

    from uniqa.provenance import RECORD_FILE, find_record, id_hashes, read_hashes

    assert summary.details["corpus_record"] == f"{run}/final/{RECORD_FILE}"
    ids = set(pq.read_table(corpus, columns=["image_id"])["image_id"].to_pylist()) - {"broken0", "broken1"}
    assert len(ids) == 24 and list(read_hashes(summary.details["corpus_record"])) == sorted(id_hashes(ids))
    assert find_record("uniqa-tiny", f"{run}/final/openai.pt") == find_record(f"{run}/final")  # the export too
    # the export: our checkpoint folder and the OpenAI-format file give the same scores
    images = [f"{corpus}/../img/{i}.png" for i in range(3)]
    ours = Scorer.from_pretrained(f"{run}/final", heads=("quality",), views="five").score(images)
    openai = Scorer.from_pretrained("uniqa-tiny", heads=("quality",), pretrained=f"{run}/final/openai.pt",
                                    views="five").score(images)
    random = Scorer.from_pretrained("uniqa-tiny", heads=("quality",), views="five").score(images)
    assert [r["quality"] for r in ours] == pytest.approx([r["quality"] for r in openai], abs=1e-6)
    assert [r["quality"] for r in ours] != pytest.approx([r["quality"] for r in random], abs=1e-4)


@pytest.mark.timeout(900)
def test_stopped_run_resumes_to_the_same_weights(uninterrupted, corpus, tmp_path, monkeypatch):
    run_a, _ = uninterrupted
    run = str(tmp_path / "run_b")
    monkeypatch.setattr(uniqa.training.run, "train_worker", failing_at(5))
    with pytest.raises(Exception, match="injected fault at step 5"):  # no restarts: the run stops at step 5
        run_pretrain(corpus, run, config(max_failures=0), progress=False)
    assert metric_steps(run) == [1, 2, 3, 4]  # what the last checkpoint (step 4) had logged
    summary = run_pretrain(corpus, run, config(max_failures=0), progress=False)
    assert summary.complete and summary.already_done == 4 and summary.rows_written == STEPS - 4
    assert metric_steps(run) == list(range(1, STEPS + 1))
    want, got = final_weights(run_a), final_weights(run)
    assert set(want) == set(got)
    for key in want:
        assert torch.allclose(got[key], want[key], atol=1e-6), key
    again = run_pretrain(corpus, run, config(max_failures=0), progress=False)
    assert again.complete and again.rows_written == 0 and again.already_done == STEPS  # nothing left to do


@pytest.mark.timeout(900)
def test_worker_fault_recovers_from_the_last_checkpoint_two_workers(corpus, ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative --out (Ray Train workers run elsewhere: they must get it absolute)
    monkeypatch.setattr(uniqa.training.run, "train_worker", failing_at(3))
    summary = run_pretrain(corpus, "run_c", config(num_workers=2), progress=False)
    run = str(tmp_path / "run_c")
    assert summary.complete and summary.rows_out == STEPS and summary.output == "run_c"  # --out as given
    assert (tmp_path / "run_c" / "final" / "model.safetensors").is_file()
    with open(f"{run}/{MARKER}") as f:
        assert f.read() == "3"
    assert metric_steps(run) == list(range(1, STEPS + 1))  # steps 3.. logged once, after the restart from step 2


@pytest.mark.timeout(300)
def test_corpus_without_usable_images_fails_before_training(ray_session, tmp_path):
    corpus = write_corpus(tmp_path, n_images=0, broken=9)
    with pytest.raises(UniqaError, match="has no usable images"):
        run_pretrain(corpus, str(tmp_path / "run"), config(batch_size=2, steps=1), progress=False)
