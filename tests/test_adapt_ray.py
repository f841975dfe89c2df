"""``uniqa adapt`` end to end on the sample corpus: all 10 splits as Ray tasks on 2 cores, the results files and
table, adapters that `uniqa score` loads, and the comparison with zero-shot on the same model."""

from __future__ import annotations

import time

import pyarrow.parquet as pq
import pytest
import torch

from uniqa.cli import main

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def setup(small_kadid, tmp_path_factory):
    import torch

    from uniqa.data.prepare import prepare
    from uniqa.models import create_model, save_checkpoint

    root = tmp_path_factory.mktemp("adapt_ray")
    prepare("kadid10k", small_kadid, str(root / "manifest"))  # 8 references x 45 images
    torch.manual_seed(0)
    model, _, _ = create_model("uniqa-small")  # random init: the test is about the machinery
    save_checkpoint(model, "uniqa-small", str(root / "ckpt"))
    return root


@pytest.mark.timeout(900)
def test_full_protocol_runs_all_splits_and_beats_zero_shot(ray_session, setup, capsys):
    root = setup
    start = time.perf_counter()
    code = main(["adapt", "--manifest", str(root / "manifest"), "--model", str(root / "ckpt"), "--protocol", "full",
                 "--out", str(root / "full"), "--quiet"])
    seconds = time.perf_counter() - start
    assert code == 0
    printed = capsys.readouterr().out
    assert "full          all quality              reference    10" in printed
    assert "adapt: 10 runs written" in printed
    results = pq.read_table(root / "full" / "results.parquet").to_pylist()
    assert sorted({r["run"] for r in results}) == sorted(f"split_{i}" for i in range(10))
    assert {r["selection"] for r in results} == {"reference", "clean"} and len(results) == 20
    assert {(r["n_train"], r["n_val"], r["n_test"]) for r in results} == {(270, 0, 90), (225, 45, 90)}
    assert (root / "full" / "results.csv").read_text().splitlines()[0].startswith('"protocol","run","split"')
    assert (root / "full" / "features" / "_run.json").exists()  # computed by adapt itself
    print(f"full protocol, 10 splits, features included: {seconds:.0f} s")

    code = main(["adapt", "--manifest", str(root / "manifest"), "--model", str(root / "ckpt"), "--protocol",
                 "zero-shot", "--features", str(root / "full" / "features"), "--out", str(root / "zero"), "--quiet"])
    assert code == 0
    rows = [r for run in ("zero", "full") for r in pq.read_table(root / run / "summary.parquet").to_pylist()]
    summary = {(r["selection"], r["prompt_set"]): r for r in rows}
    assert set(summary) == {("zero-shot", "quality"), ("zero-shot", "quality-ensemble"), ("reference", "quality"),
                            ("clean", "quality")}
    best_zero_shot = max(summary[("zero-shot", p)]["srcc_mean"] for p in ("quality", "quality-ensemble"))
    assert summary[("reference", "quality")]["srcc_mean"] > best_zero_shot

    # the saved adapter is what `uniqa score --heads quality=DIR` loads, and it scores like the cache predicts: the
    # scorer's crops10 of an image are the features' test crops (seeded per image_id), through the same encoder
    from uniqa.adapters.head import load_head
    from uniqa.adapters.training import predict
    from uniqa.features.read import load_features
    from uniqa.scoring.api import Scorer

    adapter = root / "full" / "adapters" / "split_0"
    manifest = pq.read_table(root / "manifest").slice(0, 3)
    ids, uris = manifest["image_id"].to_pylist(), manifest["image_uri"].to_pylist()
    rows = Scorer.from_pretrained(str(root / "ckpt"), heads=(f"quality={adapter}",)).score(uris, ids=ids)
    cached = load_features(str(root / "full" / "features"), ids, 20, 10)
    expected = predict(load_head(str(adapter)).eval(), torch.from_numpy(cached.test))
    assert [r["quality"] for r in rows] == pytest.approx(list(expected), abs=1e-5)
