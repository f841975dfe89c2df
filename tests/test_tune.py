"""``uniqa tune`` without Ray: the sweep files parse, and bad input is one ``error:`` line before any trial."""

from __future__ import annotations

from pathlib import Path

import pytest

from uniqa.cli import main
from uniqa.config import config_data, from_dict
from uniqa.errors import UniqaError
from uniqa.tuning.config import ADAPTER_PARAMS, TuneConfig
from uniqa.tuning.sweep import pick_best

SWEEPS = Path(__file__).parent.parent / "tuning"


def sweep_file(path: str) -> TuneConfig:
    """The TuneConfig that ``uniqa tune --config PATH`` builds."""
    return from_dict(TuneConfig, config_data(path))


@pytest.mark.parametrize("name", ["adapter-quality", "adapter-aesthetics", "pretrain-small"])
def test_sweep_files_parse(name):
    cfg = sweep_file(str(SWEEPS / f"{name}.yaml"))
    if name.startswith("adapter"):
        assert set(cfg.search_space) == set(ADAPTER_PARAMS)  # every adapter hyperparameter is swept
        assert cfg.scheduler.kind == "asha" and cfg.metric == "val_srcc" and cfg.mode == "max"
        assert cfg.values("prompt_set") == ["single", "ensemble"]
        assert cfg.base["head"] == name.split("-")[1]
    else:
        assert cfg.kind == "pretrain" and cfg.metric == "zero_shot_srcc" and cfg.mode == "max"  # never the loss
        assert set(cfg.search_space) == {"lr", "weight_decay", "batch_size"}


@pytest.mark.parametrize("text, match", [
    ("search_space: {momentum: {choice: [0.9]}}", "unknown hyperparameter 'momentum' in search_space; valid for "
                                                  "kind adapter: .*'hidden'"),
    ("search_space: {}", "empty search space"),
    ("search_space: {lr: 0.001}\nmetric: val_accuracy", "metric 'val_accuracy' is not reported by adapter trials; "
                                                         "they report .*'val_srcc'"),
    ("kind: pretrain\nsearch_space: {lr: 0.001}\nmetric: val_srcc", "metric 'val_srcc' is not reported by pretrain"),
    ("search_space: {lr: {loguniform: [0, 1]}}", r"search_space.lr.loguniform needs 0 < low < high"),
    ("search_space: {lr: {sample: [1, 2]}}", "search_space.lr must be a value or one of"),
    ("search_space: {hidden: {choice: []}}", "search_space.hidden.choice must be a non-empty list"),
    ("search_space: {lr: 0.001}\nmode: maximum", "mode must be one of"),
])
def test_bad_sweep_is_one_error_line_before_any_trial(tmp_path, capsys, text, match):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"base: {{model: uniqa-tiny}}\n{text}\n")
    out = tmp_path / "run"
    code = main(["tune", "--config", str(sweep), "--manifest", str(tmp_path / "nothing"), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    import re

    assert re.search(match, err[0]), err[0]
    assert not out.exists()  # no trial, no Tune experiment, nothing written


def test_storage_checks_come_before_any_trial(tmp_path, capsys):
    code = main(["tune", "--config", str(SWEEPS / "adapter-quality.yaml"), "--manifest", str(tmp_path / "none"),
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "none" in err[0]
    assert not (tmp_path / "run").exists()
    with pytest.raises(UniqaError, match="a pretrain sweep needs --corpus"):
        from uniqa.tuning.sweep import preflight

        preflight(None, None, None, str(tmp_path / "run"), sweep_file(str(SWEEPS / "pretrain-small.yaml")))


def test_pretrain_sweep_needs_a_held_out_manifest(tmp_path):
    """zero_shot_srcc needs a manifest; a manifest whose test side is in the corpus is refused (before a trial)."""
    from tests.test_pretrain import write_corpus
    from uniqa.tuning.sweep import preflight

    corpus = write_corpus(tmp_path, n_images=8)
    cfg = sweep_file(str(SWEEPS / "pretrain-small.yaml"))
    out = str(tmp_path / "run")
    with pytest.raises(UniqaError, match="metric zero_shot_srcc needs --manifest"):
        preflight(None, None, corpus, out, cfg)
    held_out = write_manifest(tmp_path / "held-out", [f"t{i}" for i in range(8)], corpus)
    assert preflight(held_out, None, corpus, out, cfg).sweep.base.model == "uniqa-small"
    seen = write_manifest(tmp_path / "seen", [f"im{i}" for i in range(8)], corpus)  # the corpus's own images
    with pytest.raises(UniqaError, match=r"4 of the 4 test-side images of split_0 of manifest .*seen \(e.g. im"):
        preflight(seen, None, corpus, out, cfg)


def write_manifest(folder, ids: list[str], corpus: str) -> str:
    """A labelled manifest of the corpus's images under ``ids`` (split_0: the second half is the test side)."""
    import numpy as np
    import pyarrow.parquet as pq

    from uniqa.schema import MANIFEST, SPLIT_COLUMNS
    from uniqa.tables import write_table

    uris = pq.read_table(corpus, columns=["image_uri"])["image_uri"].to_pylist()
    mos = np.linspace(0.05, 0.95, len(ids))
    rows = [{"image_id": i, "image_uri": uris[2 * n], "dataset": "d", "task": "quality", "mos": float(m),
             "mos_norm": float(m), "level": "fair", **{c: None for c in SPLIT_COLUMNS},
             "split_0": "test" if n >= len(ids) // 2 else "train"} for n, (i, m) in enumerate(zip(ids, mos))]
    import pyarrow as pa

    write_table(pa.Table.from_pylist(rows), str(folder), MANIFEST)
    return str(folder)


def test_planned_trials_count_the_grid():
    assert TuneConfig(search_space={"lr": 0.001}, num_samples=3).planned_trials() == 3
    space = {"lr": {"grid": [1e-3, 3e-3]}, "epochs": {"grid": [1, 2, 4]}, "batch_size": {"choice": [8, 16]}}
    assert TuneConfig(search_space=space, num_samples=2).planned_trials() == 12


def test_every_kind_has_a_sweep_module():
    from uniqa.tuning.config import KINDS as NAMES
    from uniqa.tuning.sweep import KINDS

    assert sorted(KINDS) == sorted(NAMES)
    for kind in KINDS.values():
        assert all(callable(getattr(kind, name)) for name in ("preflight", "trainable", "stopped_early", "export",
                                                               "details"))


def test_ledger_says_what_finished_before_this_run():
    from uniqa.tuning.ledger import finished_before

    before = {"a": {"start": 1, "complete": 1}, "b": {"start": 1, "error": 1}, "c": {"start": 1, "complete": 1},
              "d": {"start": 1}}
    after = {"a": {"start": 1, "complete": 1}, "b": {"start": 2, "error": 1, "complete": 1},
             "c": {"start": 2, "complete": 2}, "d": {"start": 2, "complete": 1}, "e": {"start": 1, "complete": 1}}
    # a: finished and not run again; b: errored (retried); c: finished but run again (Tune had not saved it);
    # d: interrupted; e: new
    assert finished_before(before, after) == ["a"]
    assert finished_before({}, after) == []


def test_best_is_never_an_errored_trial():
    cfg = TuneConfig(search_space={"lr": 0.001})
    rows = [{"trial": 0, "best_val_srcc": 0.9, "error": "RuntimeError: boom"},
            {"trial": 1, "best_val_srcc": float("nan"), "error": None},
            {"trial": 2, "best_val_srcc": 0.5, "error": None},
            {"trial": 3, "best_val_srcc": 0.7, "error": None}]
    assert pick_best(rows, cfg)["trial"] == 3
    assert pick_best(rows[:2], cfg) is None
    assert pick_best(rows, TuneConfig(search_space={"lr": 0.001}, mode="min"))["trial"] == 2
