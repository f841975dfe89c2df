"""``uniqa report``: synthetic demo / scoring / pre-training run folders -> one self-contained HTML file whose
numbers equal the run's files (no Ray, no model)."""

from __future__ import annotations

import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from uniqa.cli import main
from uniqa.errors import UniqaError
from uniqa.evaluation.metrics import krcc, plcc, srcc
from uniqa.report import build_report
from uniqa.report.html import interval, metric
from uniqa.report.samples import quotas, spread
from uniqa.report.screenshot import BROWSERS, parse_window
from uniqa.schema import CAPTIONS, MANIFEST, PURIFIED, SPLIT_COLUMNS, scores_schema
from uniqa.stage import StageSummary, read_summary
from uniqa.tables import write_table

HEADS = ("quality", "aesthetics")
PAIRS = (("kadid10k", "quality"), ("ava", "aesthetics"))
PHASE_NOISE = {"before": 5.0, "after": 0.4, "adapted": 0.1}  # noise of the synthetic scores around mos_norm
BROKEN_IMAGE = "kadid10k/I02_03_03.png"  # the lowest-MOS test image: always in the gallery; its file is garbage


def _png(path: Path, seed: int, size: int = 24, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)).save(path, fmt)


def _manifest_rows(root: Path) -> list[dict]:
    """kadid10k: 3 references x 3 distortion types x 3 levels (references I02, I03 on the test side); ava: 8
    images (4 test). Images live under root/sample, as in a demo run."""
    rows = []
    for r in (1, 2, 3):
        for t in (1, 2, 3):
            for level in (1, 2, 3):
                name = f"I{r:02d}_{t:02d}_{level:02d}.png"
                path = root / "sample" / "iqa" / "images" / name
                _png(path, seed=len(rows))
                mos = 5.0 - 0.9 * level - 0.25 * t + 0.1 * r
                rows.append({"image_id": f"kadid10k/{name}", "image_uri": str(path), "dataset": "kadid10k",
                             "task": "quality", "mos": mos, "mos_norm": (mos - 1) / 4, "level": "fair",
                             "group": f"I{r:02d}", "split": "train" if r == 1 else "test",
                             "attrs": [("dist_type", float(t)), ("dist_level", float(level))]})
    for i in range(8):
        path = root / "sample" / "iaa" / "images" / f"{900100 + i}.jpg"
        _png(path, seed=100 + i, fmt="JPEG")
        mos = 3.0 + 0.7 * i
        rows.append({"image_id": f"ava/{900100 + i}.jpg", "image_uri": str(path), "dataset": "ava",
                     "task": "aesthetics", "mos": mos, "mos_norm": (mos - 1) / 9, "level": "good",
                     "group": f"ava/{i}", "split": "test" if i % 2 else "train",
                     "attrs": [("votes_5", float(10 + i))]})
    (root / "sample" / "iqa" / "images" / BROKEN_IMAGE.split("/")[1]).write_bytes(b"not an image")
    return rows


def _write_manifests(root: Path, rows: list[dict]) -> None:
    for part, dataset in (("iqa", "kadid10k"), ("iaa", "ava")):
        mine = [r for r in rows if r["dataset"] == dataset]
        columns = {k: [r[k] for r in mine] for k in ("image_id", "image_uri", "dataset", "task", "mos", "mos_norm",
                                                     "level", "group")}
        columns |= {c: [r["split"] for r in mine] for c in SPLIT_COLUMNS}
        columns["attrs"] = pa.array([r["attrs"] for r in mine], pa.map_(pa.string(), pa.float64()))
        table = pa.table(columns)
        write_table(table, str(root / "manifests" / part), MANIFEST)
        test = table.filter(pa.compute.equal(table["split_0"], "test"))  # the demo's test-side manifest: a subset
        write_table(test, str(root / "manifests" / f"{part}-test"), MANIFEST)


def _write_scores(root: Path, rows: list[dict]) -> dict[str, dict[str, np.ndarray]]:
    """scores/<phase>/<part>: mos_norm + phase noise; one adapted ava row carries an error. Returns the scores."""
    out = {}
    norm = np.array([r["mos_norm"] for r in rows])
    for p, (phase, noise) in enumerate(PHASE_NOISE.items()):
        rng = np.random.default_rng(p)
        values = {h: norm + rng.normal(0, noise * 0.1, len(rows)) for h in HEADS}
        out[phase] = values
        for part, dataset in (("iqa", "kadid10k"), ("iaa", "ava")):
            idx = [i for i, r in enumerate(rows) if r["dataset"] == dataset]
            error = [None] * len(idx)
            if phase == "adapted" and dataset == "ava":
                error[1] = "ImageError: truncated file"  # ava/900101.jpg, a test-side image
            table = pa.table({"image_id": [rows[i]["image_id"] for i in idx],
                              "image_uri": [rows[i]["image_uri"] for i in idx],
                              **{h: [None if e else float(values[h][i]) for i, e in zip(idx, error)] for h in HEADS},
                              "error": pa.array(error, pa.string()), "model_checksum": [phase] * len(idx)})
            write_table(table, str(root / "scores" / phase / part), scores_schema(list(HEADS)))
    return out


def _test_side(rows: list[dict], dataset: str) -> list[int]:
    return [i for i, r in enumerate(rows) if r["dataset"] == dataset and r["split"] == "test"]


def _phase_scores(rows: list[dict], values: dict, phase: str, head: str, idx: list[int]) -> np.ndarray:
    """A phase's scores of the rows ``idx``: NaN for the adapted ava row with an error."""
    return np.array([np.nan if phase == "adapted" and rows[i]["image_id"] == "ava/900101.jpg" else values[head][i]
                     for i in idx])


def _evaluation_row(dataset: str, head: str, pred: np.ndarray, mos: np.ndarray, units: np.ndarray) -> dict:
    """What `uniqa evaluate` reports for one phase, dataset and head (its rows scored without error)."""
    from uniqa.evaluation.bootstrap import intervals

    ok = np.isfinite(pred)
    found = intervals(pred[ok], mos[ok], units[ok])
    return {"dataset": dataset, "head": head, "split": "split_0", "side": "test", "n": int(ok.sum()),
            "groups": len(set(units[ok])), "srcc": srcc(pred[ok], mos[ok]), "plcc": plcc(pred[ok], mos[ok]),
            "krcc": krcc(pred[ok], mos[ok]), **{f"{m}_{end}": getattr(found[m], end) for m in ("srcc", "plcc")
                                                for end in ("lo", "hi")}}


def _metrics(rows: list[dict], scores: dict) -> dict:
    """metrics.json as `uniqa demo` writes it (its own assemble_metrics): results with intervals, paired gains,
    checks decided on the intervals."""
    from uniqa.demo import results as demo
    from uniqa.evaluation.bootstrap import bootstrap_units, unit_name
    from uniqa.evaluation.paired import PartScores

    tables, parts = {phase: [] for phase in scores}, []
    for dataset, head in PAIRS:
        idx = _test_side(rows, dataset)
        mos = np.array([rows[i]["mos_norm"] for i in idx])
        units = bootstrap_units(*([rows[i][k] for i in idx] for k in ("task", "group", "image_id")))
        preds = {phase: _phase_scores(rows, values, phase, head, idx) for phase, values in scores.items()}
        for phase, pred in preds.items():
            tables[phase].append(_evaluation_row(dataset, head, pred, mos, units))
        baseline = {demo.baseline_phase("brisque"): preds["after"]}  # a classic metric as good as "after"
        parts.append(PartScores(dataset, head, unit_name(rows[idx[0]]["task"]), mos, units, {**preds, **baseline}))
    return demo.assemble_metrics(tables, parts)


def _legacy_metrics(metrics: dict) -> dict:
    """The same run's metrics.json as the demo wrote it before intervals: gains as numbers, checks as booleans."""
    keys = ("phase", "dataset", "head", "n", "srcc", "plcc", "krcc")
    results = [{k: r[k] for k in keys} for r in metrics["results"]]
    gains = {name: {k: g["point"] for k, g in metrics[name].items()} for name in ("zero_shot_gain", "adapter_gain")}
    return {"split": "split_0", "side": "test", "results": results, **gains,
            "checks": {k: c["passed"] for k, c in metrics["checks"].items()}}


def _write_pretrain(folder: Path, steps: int = 20) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    log = [{"step": s, "loss": 4.0 * 0.9 ** s, "lr": 1e-3 * min(1, s / 5), "logit_scale": 14.3 + s / 10,
            "images_per_s": 30.0 + s, "epoch": s / 10, "time": 1.0 + s} for s in range(1, steps + 1)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    StageSummary(stage="pretrain", inputs={}, output=str(folder), rows_in=steps, rows_out=steps).write()
    return log


# The steps of make_demo_run's folder and the stage of each: the demo's root summary (details.steps).
DEMO_STEPS = {"sample": "sample", **{f"manifests/{p}": "prepare" for p in ("iqa", "iqa-test", "iaa", "iaa-test")},
              "captions": "caption", "purified": "purify", "pretrain": "pretrain", "tune/quality": "tune",
              **{f"scores/{phase}/{p}": "score" for phase in ("classic", "before", "after", "adapted")
                 for p in ("iqa", "iaa")}}


def _demo_summary(root: Path, steps: dict[str, str] = DEMO_STEPS) -> None:
    StageSummary(stage="demo", inputs={}, output=str(root), rows_in=len(steps), rows_out=len(steps), unit="steps",
                 details={"steps": steps}).write()


def _write_text(root: Path, rows: list[dict]) -> None:
    n = len(rows)
    captions = pa.table({"image_id": [r["image_id"] for r in rows], "task": [r["task"] for r in rows],
                         "caption": [f"caption of {r['image_id']}" for r in rows], "backend": ["attributes"] * n,
                         "model": ["attributes-v2"] * n, "prompt_version": ["v1"] * n,
                         "error": pa.nulls(n, pa.string())})
    write_table(captions, str(root / "captions"), CAPTIONS)
    ava = [r["image_id"] for r in rows if r["dataset"] == "ava"]
    kept = pa.table({"image_id": [i for i in ava for _ in (1, 2)],
                     "comment": [f"comment {k} on {i}" for i in ava for k in (1, 2)], "rank": [1, 2] * len(ava),
                     **{c: [0.5, 0.4] * len(ava) for c in ("similarity",)},
                     **{c: [1, 2] * len(ava) for c in ("relevance_rank", "informativeness_rank", "words", "score")}})
    write_table(kept, str(root / "purified" / "kept"), PURIFIED)


def _write_tune(folder: Path) -> None:
    folder.mkdir(parents=True)
    write = pa.table({"trial_id": ["a_00000", "a_00001", "a_00002"], "trial": [0, 1, 2],
                      "config_lr": [1e-3, 3e-3, 1e-2], "best_val_srcc": [0.61, 0.72, float("nan")],
                      "epochs_run": [4, 3, 1], "stopped_early": [False, True, False], "seconds": [3.2, 2.8, 0.4],
                      "error": [None, None, "RuntimeError: injected failure"]})
    import pyarrow.parquet as pq

    pq.write_table(write, folder / "results.parquet")
    (folder / "best.yaml").write_text("trial: 1\ntrial_id: a_00001\nmetric: val_srcc\nvalue: 0.72\nepochs_run: 3\n"
                                      "config:\n  lr: 0.003\n")
    (folder / "test.json").write_text(json.dumps({"srcc": 0.8123, "plcc": 0.79, "n_test": 18, "split": "split_0"}))


def make_demo_run(root: Path) -> dict:
    """A demo run folder in the layout of ``uniqa demo``; returns its metrics.json."""
    rows = _manifest_rows(root)
    _demo_summary(root)
    _write_manifests(root, rows)
    metrics = _metrics(rows, _write_scores(root, rows))
    (root / "metrics.json").write_text(json.dumps(metrics))
    _write_pretrain(root / "pretrain")
    _write_text(root, rows)
    _write_tune(root / "tune" / "quality")
    (root / "configs.json").write_text(json.dumps({"pretrain": {"model": "uniqa-small", "steps": 20},
                                                   "tune_quality": {"search_space": {"lr": [1e-3, 1e-2]}}}))
    (root / "demo_summary.json").write_text(json.dumps({"out": str(root), "seconds": 12.5, "stages": [
        {"stage": "pretrain", "rows_in": 20, "rows_out": 20, "rows_with_errors": 0, "seconds": 5.0,
         "output": str(root / "pretrain")}]}))
    return metrics


def make_score_run(root: Path) -> None:
    """A ``uniqa score`` output: 10 images, one with an error, one whose file is missing."""
    ids = [f"img_{i:02d}" for i in range(10)]
    for i, image_id in enumerate(ids[:-1]):
        _png(root / "images" / f"{image_id}.png", seed=i)
    uris = [str(root / "images" / f"{i}.png") for i in ids]
    error = [None] * 9 + ["ImageError: img_09.png: file not found"]
    table = pa.table({"image_id": ids, "image_uri": uris,
                      "quality": [0.1 * i if e is None else None for i, e in enumerate(error)],
                      "aesthetics": [1 - 0.1 * i if e is None else None for i, e in enumerate(error)],
                      "error": pa.array(error, pa.string()), "model_checksum": ["c"] * 10})
    write_table(table, str(root / "scores"), scores_schema(list(HEADS)))
    (root / "scores" / "_summary.json").write_text(json.dumps({
        "stage": "score", "inputs": {"input": str(root / "images"), "input_kind": "folder"},
        "output": str(root / "scores"), "rows_in": 10, "rows_out": 10, "rows_written": 10, "rows_with_errors": 1,
        "seconds": 2.5, "rate": 4.0, "rows_missing": 0, "complete": True, "details": {"model_checksum": "c0ffee"}}))


class _Collect(HTMLParser):
    """data-metric values, data-check values, img srcs and section ids of a page."""

    def __init__(self):
        super().__init__()
        self.metrics: list[tuple[str, str]] = []
        self.checks: dict[str, str] = {}
        self.srcs: list[str] = []
        self.sections: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-metric" in a:
            self._open = a["data-metric"]
        if "data-check" in a:
            self.checks[a["data-check"]] = a["data-value"]
        if tag == "img":
            self.srcs.append(a["src"])
        if tag == "section":
            self.sections.append(a["id"])

    def handle_data(self, data):
        if self._open is not None:
            self.metrics.append((self._open, data))
            self._open = None


def parse(path: str) -> tuple[str, _Collect]:
    text = Path(path).read_text(encoding="utf-8")
    collect = _Collect()
    collect.feed(text)
    return text, collect


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory) -> tuple[Path, dict, str]:
    root = tmp_path_factory.mktemp("demo")
    metrics = make_demo_run(root)
    return root, metrics, build_report(str(root))


def _ends(key: str, ci: list | None, lo: str = "_lo", hi: str = "_hi") -> dict[str, str]:
    return {} if ci is None else {f"{key}{lo}": f"{ci[0]:.3f}", f"{key}{hi}": f"{ci[1]:.3f}"}


def test_demo_report_carries_every_metric_and_interval_once(demo_report):
    root, metrics, path = demo_report
    assert path == str(root / "report" / "report.html")
    _, page = parse(path)
    expected = {}
    for r in metrics["results"]:
        key = f"{r['phase']}/{r['dataset']}/{r['head']}"
        expected |= {f"{key}/srcc": f"{r['srcc']:.3f}", f"{key}/plcc": f"{r['plcc']:.3f}",
                     f"{key}/krcc": f"{r['krcc']:.3f}", f"{key}/n": str(r["n"]), f"{key}/groups": str(r["groups"])}
        expected |= _ends(f"{key}/srcc", r["srcc_ci"]) | _ends(f"{key}/plcc", r["plcc_ci"])
    for name, prefix in (("zero_shot_gain", "gain"), ("adapter_gain", "adapter_gain"),
                         ("adapted_over_best_classic", "adapted_over_best_classic")):
        for k, g in metrics[name].items():
            expected |= {f"{prefix}/{k}": f"{g['point']:.3f}"} | _ends(f"{prefix}/{k}", g["ci"], "/lo", "/hi")
    assert metrics["results"][0]["srcc_ci"] and metrics["zero_shot_gain"]["kadid10k/quality"]["ci"]
    assert "before/kadid10k/quality/srcc_lo" in expected and "gain/ava/aesthetics/hi" in expected
    assert len(page.metrics) == len(expected) > 3 * 2 * 5 + 4  # each key exactly once
    assert dict(page.metrics) == expected
    checks = {k: str(c["passed"]).lower() for k, c in metrics["checks"].items()}
    checks |= {f"{k}/{d}": str(e["passed"]).lower() for k, c in metrics["checks"].items() for d, e in c["per"].items()}
    assert page.checks == checks and len(checks) == 3 + 3 * 2


def test_checks_table_shows_point_interval_and_decision(demo_report):
    _, metrics, path = demo_report
    text, _ = parse(path)
    checks = text[text.index("<h3>Checks</h3>"):text.index("<h3>Every result row</h3>")]
    entry = metrics["checks"]["adapter_above_zero_shot"]["per"]["kadid10k/quality"]
    lo, hi = entry["ci"]
    assert (f"<td class=l>kadid10k/quality</td><td>{entry['point']:+.3f}</td><td>[{lo:+.3f}, {hi:+.3f}]</td>"
            in checks)
    assert "the paired interval&#x27;s lower end &gt; 0" in checks and "interval [95%]" in checks


def test_old_run_without_intervals_still_builds(demo_report, tmp_path):
    root, metrics, _ = demo_report
    old = _legacy_metrics(metrics)
    _demo_summary(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps(old))
    _, page = parse(build_report(str(tmp_path)))
    expected = {}
    for r in old["results"]:
        key = f"{r['phase']}/{r['dataset']}/{r['head']}"
        expected |= {f"{key}/{m}": f"{r[m]:.3f}" for m in ("srcc", "plcc", "krcc")} | {f"{key}/n": str(r["n"])}
    expected |= {f"gain/{k}": f"{v:.3f}" for k, v in old["zero_shot_gain"].items()}
    expected |= {f"adapter_gain/{k}": f"{v:.3f}" for k, v in old["adapter_gain"].items()}
    assert len(page.metrics) == len(expected) == 3 * 2 * 4 + 4 and dict(page.metrics) == expected
    assert page.checks == {k: str(v).lower() for k, v in old["checks"].items()}
    text = (tmp_path / "report" / "report.html").read_text()
    headline = text[text.index('id="headline"'):text.index("<h3>Checks</h3>")]
    assert headline.count("</span> –</td>") == 3 * 2 + 2 * 2  # SRCCs and gains: an en dash for the interval


def test_demo_report_sections_and_contents(demo_report):
    root, metrics, path = demo_report
    text, page = parse(path)
    assert page.sections == ["headline", "scatter", "distortions", "pretraining", "sweeps", "gallery", "errors",
                             "stages", "configs"]
    gallery = text[text.index('id="gallery"'):text.index('id="errors"')]
    assert gallery.count('class="cell"') == 12  # a dozen test-side images: 8 kadid10k + all 4 ava
    assert gallery.count("data:image/jpeg;base64,") == 11  # ... one of them is the broken file
    assert f'data-image-error="{BROKEN_IMAGE}"' in gallery and "I02_03_03.png" in gallery
    assert "caption of ava/900103.jpg" in gallery and "comment 2 on ava/900103.jpg" in gallery
    assert "kadid10k/I01_" not in gallery  # train side never shown
    distortions = text[text.index('id="distortions"'):text.index('id="pretraining"')]
    for name in ("gaussian blur", "motion blur", "gaussian noise"):  # the sample's own types 1-3, not KADID's
        assert name in distortions
    assert "lens blur" not in distortions
    assert "ImageError: truncated file" in text[text.index('id="errors"'):]  # the adapted ava row's error
    assert re.search(r'<tr class=best><td class=l>1</td>', text)  # best.yaml's trial highlighted
    assert "0.812" in text and "injected failure" in text  # test.json, an errored trial
    assert "config <code>lr=0.003</code>" in text and "Sum of the stages' seconds: 5.0 s" in text
    assert "&quot;model&quot;: &quot;uniqa-small&quot;" in text  # configs.json in <pre>
    pretraining = text[text.index('id="pretraining"'):text.index('id="sweeps"')]
    assert re.search(r"loss at first step</td><td[^>]*>3.6</td>", pretraining)  # 4 * 0.9 ** 1


def test_distortion_srcc_carries_a_bootstrap_interval_over_references(demo_report):
    from uniqa.evaluation.bootstrap import interval
    from uniqa.report.load import RunFolder

    root, _, path = demo_report
    text, _ = parse(path)
    distortions = text[text.index('id="distortions"'):text.index('id="pretraining"')]
    assert "95% cluster-bootstrap interval" in distortions and "SRCC after [95%]" in distortions
    run = RunFolder(str(root))
    assert run.manifest["image_id"].is_unique  # manifests/<part> and its test-side subset: each image once
    scored = run.scored("after")
    part = scored[(scored["dataset"] == "kadid10k") & (scored["dist_type"] == 2)]
    assert len(part) == 6 and set(part["group"]) == {"I02", "I03"}  # two test references, three levels each
    found = interval(part["quality"], part["mos_norm"], part["group"].to_numpy(), "srcc")
    assert f"<td>{found.point:.3f} [{found.lo:.2f}, {found.hi:.2f}]</td>" in distortions


def test_report_is_self_contained(demo_report):
    _, _, path = demo_report
    text, page = parse(path)
    assert not re.search(r"https?://", text)
    assert "<script" not in text and "<link" not in text and "url(" not in text
    assert page.srcs and all(s.startswith("data:image/") for s in page.srcs)
    # headline bars, scatter, distortion bars, loss
    assert sum(s.startswith("data:image/png;base64,") for s in page.srcs) == 4
    assert os.path.getsize(path) < 2_000_000


def test_scoring_run_report(tmp_path, capsys):
    make_score_run(tmp_path)
    run = str(tmp_path / "scores")
    assert main(["report", run, "--out", str(tmp_path / "r")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("report: 1 reports written") and line.endswith(f"(complete) -> {tmp_path / 'r'}")
    summary = read_summary(str(tmp_path / "r"))
    assert summary["inputs"] == {"run_dir": run} and summary["details"]["reported_stage"] == "score"
    text, page = parse(str(tmp_path / "r" / "report.html"))
    assert page.sections == ["scoring", "histograms", "extremes", "errors"]
    errors = text[text.index('id="errors"'):]
    assert "img_09" in errors and "ImageError: img_09.png: file not found" in errors and "1 row(s)" in errors
    assert "c0ffee" in text and "scoring run" in text
    histograms = text[text.index('id="histograms"'):text.index('id="extremes"')]
    assert histograms.count("data:image/png;base64,") == 1
    extremes = text[text.index('id="extremes"'):text.index('id="errors"')]
    assert extremes.count('class="cell"') == 4 * 6  # best and worst six, per head
    best_quality = extremes[extremes.index("quality: best"):extremes.index("quality: worst")]
    assert best_quality.index("img_08") < best_quality.index("img_07")  # highest first
    assert "img_09" not in extremes and not page.metrics


def test_curation_run_report_shows_the_filter_and_the_scores_it_filtered(tmp_path, ray_session):
    from uniqa.curation.config import FilterConfig
    from uniqa.curation.run import run_filter

    make_score_run(tmp_path)
    out = tmp_path / "curated"
    run_filter(str(tmp_path / "scores"), None, str(out), FilterConfig(where="quality >= 0.45"), progress=False)
    assert main(["report", str(out)]) == 0  # into OUT/report: the filter's own folder keeps its summary
    assert read_summary(str(out))["stage"] == "filter" and read_summary(str(out / "report"))["stage"] == "report"
    text, page = parse(str(out / "report" / "report.html"))
    assert page.sections == ["curation", "scoring", "histograms", "extremes", "errors"]
    assert "curation run" in text and "c0ffee" in text  # the scores' own summary, not the filter's
    curation = text[text.index('id="curation"'):text.index('id="scoring"')]
    assert ">4<" in curation and ">6<" in curation  # kept (0.5 .. 0.8) and rejected (0 .. 0.4 and the error row)
    assert "where quality &gt;= 0.45" in curation and "0.45" in curation and "scoring error" in curation
    assert curation.count("data:image/png;base64,") == 1  # the filter's histograms.png, thresholds drawn
    (out / "histograms.png").unlink()
    shutil.rmtree(tmp_path / "scores")  # the scores are gone: the filter's part stands alone, saying so
    assert main(["report", str(out)]) == 0
    text, page = parse(str(out / "report" / "report.html"))
    assert page.sections == ["curation"] and "are not there" in text and "data:image/png" not in text


def test_demo_run_on_s3(tmp_path, s3_bucket):
    from dataset_fixtures import upload_tree

    from uniqa import storage

    metrics = make_demo_run(tmp_path / "run")
    upload_tree(tmp_path / "run", f"{s3_bucket}/run")
    path = build_report(f"{s3_bucket}/run")
    assert path == f"{s3_bucket}/run/report/report.html"
    page = _Collect()
    page.feed(storage.read_bytes(path).decode())
    assert page.sections[:3] == ["headline", "scatter", "distortions"] and "gallery" in page.sections
    r = metrics["results"][0]
    assert dict(page.metrics)[f"{r['phase']}/{r['dataset']}/{r['head']}/srcc"] == f"{r['srcc']:.3f}"


def test_pretrain_run_report(tmp_path):
    log = _write_pretrain(tmp_path)
    _, page = parse(build_report(str(tmp_path)))
    assert page.sections == ["pretraining"]
    text = Path(tmp_path / "report" / "report.html").read_text()
    assert "pre-training run" in text and f"{log[-1]['loss']:.4g}" in text and "<td class=l>steps logged</td>" in text


def test_without_metrics_each_dataset_pairs_with_its_task_head(tmp_path):
    from uniqa.report.evaluation import pairs
    from uniqa.report.load import RunFolder

    make_demo_run(tmp_path)
    (tmp_path / "metrics.json").unlink()
    assert pairs(RunFolder(str(tmp_path))) == [("ava", "aesthetics"), ("kadid10k", "quality")]


def test_unreadable_input_becomes_a_note(tmp_path):
    _demo_summary(tmp_path, {"pretrain": "pretrain"})
    _write_pretrain(tmp_path / "pretrain")
    (tmp_path / "metrics.json").write_text("{not json")
    text, page = parse(build_report(str(tmp_path)))
    assert page.sections == ["headline", "pretraining"]
    assert "this section could not be built" in text and "metrics.json: not valid JSON" in text


@pytest.mark.parametrize("make", ["missing", "empty", "unknown", "files without a summary", "prepare"])
def test_nothing_to_report_is_one_error_line(tmp_path, capsys, make):
    run = tmp_path / "run"
    if make != "missing":
        run.mkdir()
    if make == "unknown":
        (run / "notes.txt").write_text("hello")
    if make == "files without a summary":  # the folder's kind comes from its _summary.json, not its files
        _write_pretrain(run)
        (run / "_summary.json").unlink()
    if make == "prepare":
        StageSummary(stage="prepare", inputs={}, output=str(run), rows_in=1, rows_out=1).write()
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(run) in err and err.count("\n") == 1
    assert ("no _summary.json" in err) == (make in ("empty", "unknown", "files without a summary"))
    assert not (run / "report").exists()


def test_screenshot_needs_a_browser(tmp_path, capsys, monkeypatch):
    _write_pretrain(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    assert main(["report", str(tmp_path), "--screenshot"]) == 2
    assert "chromium" in capsys.readouterr().err and not (tmp_path / "report").exists()  # refused before any work
    assert main(["report", str(tmp_path), "--window-size", "1280"]) == 2  # a bad size: before any work
    assert "WIDTHxHEIGHT" in capsys.readouterr().err and not (tmp_path / "report").exists()
    with pytest.raises(UniqaError, match="WIDTHxHEIGHT"):
        parse_window("1280")


def test_metric_and_spread_helpers():
    import pandas as pd

    assert metric("a/b", 0.41249) == '<span class="metric" data-metric="a/b">0.412</span>'
    assert interval("a_lo", "a_hi", [0.1, 0.25]) == ('[<span class="metric" data-metric="a_lo">0.100</span>, '
                                                    '<span class="metric" data-metric="a_hi">0.250</span>]')
    assert interval("a_lo", "a_hi", None) == interval("a_lo", "a_hi", [None, 0.2]) == "–"
    assert ">nan<" in metric("x", float("nan")) and ">12<" in metric("n", 12) and "neg" in metric("g", -0.1, True)
    frame = pd.DataFrame({"image_id": [f"i{k}" for k in range(10)], "mos_norm": np.linspace(1, 0, 10)})
    assert spread(frame, 3)["image_id"].tolist() == ["i9", "i5", "i0"]  # lowest, middle, highest MOS
    assert quotas({"a": 18, "b": 4}, 12) == {"a": 8, "b": 4} and quotas({"a": 2, "b": 1}, 12) == {"a": 2, "b": 1}


@pytest.mark.skipif(not any(shutil.which(b) for b in BROWSERS), reason="no headless Chromium on PATH")
def test_screenshot_renders_the_report(demo_report, tmp_path, capsys):
    root, _, _ = demo_report
    assert main(["report", str(root), "--out", str(tmp_path / "r"), "--screenshot", "--window-size", "1024x1600"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"-> {tmp_path / 'r'}")
    png = tmp_path / "r" / "report.png"
    assert read_summary(str(tmp_path / "r"))["details"]["png"] == str(png)
    with Image.open(png) as im:
        assert im.size[0] == 1024
        pixels = np.asarray(im.convert("L"), np.float64)
    assert pixels.var() > 100  # text, tables and plots, not a blank page
