"""Classic metrics (NIQE, BRISQUE, PIQE) as scoring heads: config, the in-process Scorer and one Ray Data pass
beside the model heads, and a classic-only run that loads no model. The metrics' own values are checked against
the reference packages in test_classic.py; here: that the pipeline computes them on the decoded image, orients
them and keeps every row."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
import test_scoring
from test_scoring import tiny_config

from uniqa.classic import classic_score
from uniqa.data.images import DecodeConfig, load_image
from uniqa.errors import UniqaError
from uniqa.schema import score_columns
from uniqa.scoring.config import ScoreConfig, preflight
from uniqa.scoring.fingerprint import fingerprint

tiny_model, mixed_images = test_scoring.tiny_model, test_scoring.mixed_images
CLASSIC = ("niqe", "brisque", "piqe")


def expected(uri: str, metric: str) -> float | None:
    """The metric on the image as the pipeline decodes it; None where it cannot be computed."""
    try:
        return classic_score(metric, load_image(uri, DecodeConfig()))
    except UniqaError:
        return None


def check_classic_rows(rows: list[dict], mixed: dict, names=CLASSIC) -> None:
    """Every row; classic columns null on error rows; elsewhere the negated published value beside it."""
    by_uri = {r["image_uri"]: r for r in rows}
    assert len(by_uri) == len(mixed["uris"])
    for case in mixed["cases"]:  # the bad-input zoo's errors, as with model heads
        error = by_uri[case.uri]["error"]
        assert error is None if case.ok else (error and case.match in error), (case.name, error)
    computed = 0
    for uri, row in by_uri.items():
        for name in names:
            if row["error"] is not None:
                assert row[name] is None and row[f"{name}_raw"] is None, (uri, name)
                continue
            want = expected(uri, name)
            if want is None:
                assert row[name] is None and row[f"{name}_raw"] is None, (uri, name)
                continue
            computed += 1
            assert row[f"{name}_raw"] == pytest.approx(want, abs=1e-9), (uri, name)
            assert row[name] == -row[f"{name}_raw"]
    assert computed >= len(mixed["good"]) * len(names)  # every good image got every metric


def test_classic_heads_in_config():
    cfg = ScoreConfig(heads=("niqe", "b=brisque", "piqe"))  # no model: classic heads need none
    assert [s.classic for s in cfg.head_specs] == [True, True, True] and not cfg.model_heads
    assert [s.name for s in cfg.classic_heads] == ["niqe", "b", "piqe"]
    with pytest.raises(UniqaError, match=r"no model: heads \['quality'\] need one"):
        ScoreConfig(heads=("quality", "niqe"))
    with pytest.raises(UniqaError, match="embeddings need a model"):
        ScoreConfig(heads=("niqe",), embeddings=True)
    with pytest.raises(UniqaError, match="head 'nique'"):
        ScoreConfig(model="uniqa-tiny", heads=("nique",))  # a typo is an unknown prompt set, not a metric
    done = preflight(cfg)
    assert (done.model, done.image_size) == ("", None)
    assert fingerprint(done) != fingerprint(preflight(ScoreConfig(heads=("niqe", "b=brisque"))))


def test_scorer_api_classic_beside_model_heads(tiny_model, mixed_images):
    from uniqa.scoring.api import Scorer

    heads = ("quality", "niqe", "brisque", "piqe")
    rows = Scorer(tiny_config(tiny_model, heads=heads, batch_size=4)).score(mixed_images["uris"])
    check_classic_rows(rows, mixed_images)
    model_only = Scorer(tiny_config(tiny_model, heads=("quality",), batch_size=4)).score(mixed_images["uris"])
    assert [r["quality"] for r in rows] == [r["quality"] for r in model_only]  # classic heads change nothing else
    classic_only = Scorer(ScoreConfig(heads=CLASSIC)).score(mixed_images["uris"])
    assert classic_only[0].keys() == {"image_id", "image_uri", *CLASSIC, *(f"{c}_raw" for c in CLASSIC), "error",
                                      "model_checksum"}
    assert [r["niqe_raw"] for r in classic_only] == [r["niqe_raw"] for r in rows]


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_one_ray_pass_scores_model_and_classic_heads(ray_session, tiny_model, mixed_images, tmp_path):
    from uniqa.scoring.run import run_score

    listing = tmp_path / "images.txt"
    listing.write_text("\n".join(mixed_images["uris"]) + "\n")
    n, n_bad = len(mixed_images["uris"]), sum(not c.ok for c in mixed_images["cases"])
    cfg = tiny_config(tiny_model, heads=("quality", "niqe", "brisque", "piqe"), batch_size=4, rows_per_block=9,
                      num_cpus=0.5, decode_cpus=0.5)
    summary = run_score(str(listing), str(tmp_path / "both"), cfg, progress=False)
    assert (summary.rows_written, summary.rows_with_errors, summary.rows_out) == (n, n_bad, n)
    table = pq.read_table(tmp_path / "both")
    assert table.schema.names[:10] == ["image_id", "image_uri", "quality", "niqe", "brisque", "piqe", "niqe_raw",
                                       "brisque_raw", "piqe_raw", "error"]
    assert score_columns(table.schema) == ["quality", "niqe", "brisque", "piqe"]  # what evaluate and filter see
    check_classic_rows(table.to_pylist(), mixed_images)

    # classic heads alone: no model, no actors; the same values
    summary = run_score(str(listing), str(tmp_path / "classic"), ScoreConfig(heads=("niqe", "brisque")),
                        progress=False)
    assert (summary.rows_written, summary.rows_with_errors) == (n, n_bad)
    alone = {r["image_id"]: r for r in pq.read_table(tmp_path / "classic").to_pylist()}
    for row in table.to_pylist():
        assert (alone[row["image_id"]]["niqe"], alone[row["image_id"]]["brisque"]) == (row["niqe"], row["brisque"])
    again = run_score(str(listing), str(tmp_path / "classic"), ScoreConfig(heads=("niqe", "brisque")),
                      progress=False)
    assert (again.already_done, again.rows_written) == (n, 0)  # resumes like any scoring run
