"""The leak guard (uniqa.provenance): a pre-trained checkpoint's record of its corpus image ids, and `uniqa adapt`
refusing to evaluate on images the model was pre-trained on. The record written by a real pre-training run is
checked in test_pretrain_ray.py; here a checkpoint folder gets a record of chosen ids."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from uniqa.adapters.config import AdaptConfig
from uniqa.adapters.run import preflight
from uniqa.errors import UniqaError
from uniqa.provenance import RECORD_FILE, UNKNOWN, check_leak, find_record, id_hashes, read_hashes, write_record


@pytest.fixture(scope="module")
def setup(sample_corpus, tmp_path_factory) -> dict:
    """The sample's KADID-format manifest (40 references; split_0's test side: 8 of them, 480 images) and a
    uniqa-tiny checkpoint folder with its OpenAI-format export, as `uniqa pretrain` leaves RUN/final (without a
    record yet)."""
    from uniqa.data.prepare import prepare
    from uniqa.models import create_model, save_checkpoint, save_openai_state_dict

    root = tmp_path_factory.mktemp("provenance")
    prepare("kadid10k", f"{sample_corpus}/iqa", str(root / "manifest"))
    table = pq.read_table(root / "manifest").to_pydict()
    torch.manual_seed(0)
    model, _, _ = create_model("uniqa-tiny")
    save_checkpoint(model, "uniqa-tiny", str(root / "final"))
    save_openai_state_dict(model, str(root / "final" / "openai.pt"))
    test = [i for i, side in zip(table["image_id"], table["split_0"]) if side == "test"]
    return {"root": root, "manifest": str(root / "manifest"), "final": str(root / "final"),
            "ids": table["image_id"], "test": test}


def adapt_config(setup, **kw) -> AdaptConfig:
    return AdaptConfig(model=setup["final"], splits=(0,), runner="local", **kw)


def test_record_is_sorted_unique_and_merges_its_parent(tmp_path):
    first = write_record(str(tmp_path / "a"), id_hashes(["x/1", "x/2", "x/2"]), "s3://b/corpus")
    assert list(read_hashes(first)) == sorted(set(id_hashes(["x/1", "x/2"])))
    second = write_record(str(tmp_path / "b"), id_hashes(["y/9"]), "s3://b/corpus2", parent=first)
    assert set(read_hashes(second)) == set(id_hashes(["x/1", "x/2", "y/9"]))  # what the starting weights saw too
    meta = pq.read_schema(second).metadata
    assert meta[b"corpus"] == b"s3://b/corpus2" and meta[b"parent"] == first.encode() and meta[b"images"] == b"3"
    assert id_hashes(["x/1"]).dtype == np.uint64 and id_hashes(["x/1"])[0] == id_hashes(["x/1"])[0]


def test_without_holdout_adapt_refuses_with_the_count(setup, capsys):
    """The corpus held every image: split_0's test side leaked. One `error:` line names the count and ids."""
    from uniqa.cli import main

    write_record(setup["final"], id_hashes(setup["ids"]), "corpus without holdout")
    n = len(setup["test"])
    with pytest.raises(UniqaError, match=rf"{n} of the {n} test-side images of manifest .* are in the pre-training "
                                         r"corpus of .*final .*--allow-leak"):
        preflight(setup["manifest"], None, "", adapt_config(setup))
    code = main(["adapt", "--manifest", setup["manifest"], "--model", setup["final"], "--out",
                 str(setup["root"] / "out"), "--set", "splits=[0]", "--runner", "local"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.startswith("error:") and len(err.splitlines()) == 1 and f"{n} of the {n}" in err
    assert not (setup["root"] / "out").exists()  # refused before any work
    # --allow-leak: it goes on, and the overlap is recorded (the summary's details.leak)
    prep = preflight(setup["manifest"], None, "", adapt_config(setup, allow_leak=True))
    assert prep.leak["leaked"] == n and prep.leak["provenance"].endswith(RECORD_FILE)
    assert set(prep.leak["examples"]) <= set(setup["test"])
    # the OpenAI-format export in the same folder carries the same record
    openai = AdaptConfig(model="uniqa-tiny", pretrained=f"{setup['final']}/openai.pt", splits=(0,), runner="local")
    with pytest.raises(UniqaError, match=rf"{n} of the {n} test-side images"):
        preflight(setup["manifest"], None, "", openai)


def test_allow_leak_runs_with_the_leaked_column_and_the_report_red_line(setup, capsys):
    """With --allow-leak the runs happen; results.parquet's `leaked` column, the printed table, the summary and the
    report (a red LEAKED line) all name the count."""
    from uniqa.cli import main
    from uniqa.report.build import build_report

    write_record(setup["final"], id_hashes(setup["ids"]), "corpus without holdout")
    n, out = len(setup["test"]), setup["root"] / "leaky"
    code = main(["adapt", "--manifest", setup["manifest"], "--model", setup["final"], "--out", str(out),
                 "--allow-leak", "--runner", "local", "--set", "splits=[0]", "--set", "protocol=zero-shot",
                 "--set", "mode=exact", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0 and f"LEAKED: {n} test images of a run are in the pre-training corpus" in printed
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert [r["leaked"] for r in rows] == [n, n] and [r["n_test"] for r in rows] == [n, n]
    assert pq.read_table(out / "summary.parquet")["leaked"].to_pylist() == [n, n]
    page = open(build_report(str(out))).read()
    assert f'<p class="leak" data-leaked="{n}">' in page and "p.leak{color:#b3261e" in page


def test_with_holdout_no_overlap(setup):
    held_out = [i for i in setup["ids"] if i not in set(setup["test"])]  # corpus built with holdout: split_0
    write_record(setup["final"], id_hashes(held_out), "corpus with holdout split_0")
    prep = preflight(setup["manifest"], None, "", adapt_config(setup))
    assert prep.leak["leaked"] == 0 and prep.leak["examples"] == []
    assert prep.in_corpus is not None and not prep.in_corpus[[prep.ids.index(i) for i in setup["test"]]].any()


def test_foreign_weights_have_unknown_provenance(setup, tmp_path):
    import shutil

    shutil.copy(f"{setup['final']}/openai.pt", tmp_path / "UniQA_weight.pt")  # a file from elsewhere, no record
    assert find_record("uniqa-tiny", str(tmp_path / "UniQA_weight.pt")) is None
    found = check_leak("uniqa-tiny", str(tmp_path / "UniQA_weight.pt"), setup["test"], allow_leak=False, where="m")
    assert found == {"provenance": UNKNOWN, "leaked": None, "examples": []}
    assert check_leak("uniqa-tiny", None, setup["test"], allow_leak=False, where="m")["provenance"] == UNKNOWN


def test_evaluate_refuses_scores_of_a_model_pre_trained_on_the_evaluated_images(setup, tmp_path):
    """`uniqa evaluate` finds the scoring model in the scores' _summary.json (uniqa score records it)."""
    import pyarrow as pa

    from uniqa.evaluation.config import EvaluateConfig
    from uniqa.evaluation.run import run_evaluate
    from uniqa.schema import scores_schema
    from uniqa.stage import StageSummary
    from uniqa.tables import write_table

    scores = str(tmp_path / "scores")
    ids, n_ids = setup["ids"], len(setup["ids"])
    rows = pa.table({"image_id": ids, "image_uri": ids, "quality": np.linspace(0, 1, n_ids),
                     "error": pa.nulls(n_ids, pa.string()), "model_checksum": ["x"] * n_ids})
    write_table(rows, scores, scores_schema(["quality"]))
    StageSummary(stage="score", inputs={}, output=scores, rows_in=1, rows_out=1,
                 details={"model": "uniqa-tiny", "pretrained": setup["final"]}).write()
    write_record(setup["final"], id_hashes(setup["ids"]), "corpus without holdout")
    n = len(setup["test"])
    with pytest.raises(UniqaError, match=rf"{n} of the {n} test-side images of manifest .*split_0"):
        run_evaluate(scores, setup["manifest"], str(tmp_path / "e"), EvaluateConfig(), progress=False)
    summary = run_evaluate(scores, setup["manifest"], str(tmp_path / "e"), EvaluateConfig(allow_leak=True),
                           progress=False)
    assert summary.details["leak"]["leaked"] == n
    assert pq.read_table(tmp_path / "e" / "metrics.parquet")["leaked"].to_pylist() == [n]  # the results table
    StageSummary(stage="score", inputs={}, output=scores, rows_in=1, rows_out=1,
                 details={"model": "", "pretrained": None}).write()  # classic heads only: no model, no check
    assert run_evaluate(scores, setup["manifest"], str(tmp_path / "e2"), EvaluateConfig(),
                        progress=False).details["leak"] is None
