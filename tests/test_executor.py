"""The one executor (uniqa.executor.execute) on the stage contract (uniqa.stage): identity and resume by mode, the
summary it assembles, and every registered stage's module on the contract. No Ray: the stages here are made up
(the real ones run through the same function in every stage's own tests)."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field

import pytest

from uniqa import stages
from uniqa.errors import UniqaError
from uniqa.executor import execute
from uniqa.stage import RUN_FILE, SUMMARY_FILE, Outcome, Plan, Run, StageSummary, read_summary


@dataclass(frozen=True)
class ToyConfig:
    rows: int = 3
    tag: str = "a"
    extra: list = field(default_factory=lambda: [1, 2])


class Toy:
    """A stage module: writes ``rows`` lines into OUT/rows.txt, resumable by mode ``resume``."""

    def __init__(self, resume: str, fail_in_work: Exception | None = None, final: bool = False):
        self.resume, self.fail, self.calls, self.runs, self.final = resume, fail_in_work, 0, [], final

    def preflight(self, text: str, out: str, cfg: ToyConfig) -> Plan:
        if text == "bad":
            raise UniqaError("input 'bad' is bad")
        return Plan(inputs={"text": text}, identity={"tag": cfg.tag, "extra": tuple(cfg.extra)}, resume=self.resume,
                    final=self.final)

    def work(self, plan: Plan, out: str, cfg: ToyConfig, run: Run) -> Outcome:
        self.calls += 1
        self.runs.append(run)
        if self.fail is not None:
            raise self.fail
        from pathlib import Path

        path = Path(out) / "rows.txt"
        before = len(path.read_text().splitlines()) if path.exists() and self.resume == "parts" else 0
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{i}\n" for i in range(cfg.rows)))
        return Outcome(rows_in=cfg.rows, rows_out=cfg.rows, rows_written=cfg.rows - before, already_done=before,
                       unit="lines", details={"text": plan.inputs["text"]})

    def output_rows(self, out: str) -> int:
        from pathlib import Path

        path = Path(out) / "rows.txt"
        return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
def toy(monkeypatch):
    def install(resume: str, **kwargs) -> Toy:
        module = Toy(resume, **kwargs)
        monkeypatch.setattr(stages, "load", lambda name: (ToyConfig, module))
        return module
    return install


def test_parts_identity_is_pinned_and_a_different_rerun_refused_before_work(toy, tmp_path):
    module, out = toy("parts"), str(tmp_path / "o")
    first = execute("toy", ["t"], out, ToyConfig(), progress=False)
    assert (first.rows_written, first.already_done, first.complete) == (3, 0, True)
    assert json.loads((tmp_path / "o" / RUN_FILE).read_text()) == {"tag": "a", "extra": [1, 2]}
    again = execute("toy", ["t"], out, ToyConfig(rows=5), progress=False)  # same identity: continues
    assert (again.rows_written, again.already_done, again.rows_out) == (2, 3, 5)
    with pytest.raises(UniqaError, match="made with tag='a', this run has tag='b'"):
        execute("toy", ["t"], out, ToyConfig(tag="b"), progress=False)
    assert module.calls == 2  # the refusal came before any work


def test_final_parts_stage_is_found_done_and_still_refuses_another_identity(toy, tmp_path):
    module, out = toy("parts", final=True), str(tmp_path / "o")
    execute("toy", ["t"], out, ToyConfig(), progress=False)
    done = execute("toy", ["t"], out, ToyConfig(), progress=False)
    assert module.calls == 1 and (done.rows_written, done.already_done, done.complete) == (0, 3, True)
    (tmp_path / "o" / "rows.txt").write_text("0\n")  # its rows are gone: the work runs (and resumes) again
    execute("toy", ["t"], out, ToyConfig(), progress=False)
    assert module.calls == 2
    with pytest.raises(UniqaError, match="made with tag='a', this run has tag='b'"):
        execute("toy", ["t"], out, ToyConfig(tag="b"), progress=False)


def test_whole_stage_found_done_only_while_identity_and_output_match(toy, tmp_path):
    module, out = toy("whole"), str(tmp_path / "o")
    execute("toy", ["t"], out, ToyConfig(), progress=False)
    done = execute("toy", ["t"], out, ToyConfig(), progress=False)
    assert module.calls == 1 and (done.rows_written, done.already_done, done.complete) == (0, 3, True)
    execute("toy", ["t"], out, ToyConfig(tag="b"), progress=False)  # another identity: recomputed, not refused
    assert module.calls == 2
    (tmp_path / "o" / "rows.txt").write_text("0\n")  # a damaged output is made again
    execute("toy", ["t"], out, ToyConfig(tag="b"), progress=False)
    assert module.calls == 3 and module.output_rows(out) == 3


def test_never_stage_always_runs(toy, tmp_path):
    module = toy("never")
    for _ in range(2):
        execute("toy", ["t"], str(tmp_path / "o"), ToyConfig(), progress=False)
    assert module.calls == 2 and not (tmp_path / "o" / RUN_FILE).exists()


def test_summary_is_assembled_by_the_executor(toy, tmp_path):
    module, out = toy("parts"), str(tmp_path / "o")
    summary = execute("toy", ["t"], out, ToyConfig(), progress=False, address="127.0.0.1:1")
    record = read_summary(out)
    assert record["stage"] == "toy" and record["inputs"] == {"text": "t"} and record["output"] == out
    assert record["details"] == {"text": "t", "identity": {"tag": "a", "extra": [1, 2]}}
    assert record["unit"] == "lines" and record["seconds"] >= 0 and len(record["config_fingerprint"]) == 16
    assert set(record) == set(StageSummary("x", {}, "o", 1, 1).to_dict())
    assert summary.line().startswith("toy: 3 lines written")
    assert module.runs == [Run(progress=False, address="127.0.0.1:1")]


def test_bad_input_fails_before_anything_is_written(toy, tmp_path):
    module = toy("parts")
    with pytest.raises(UniqaError, match="input 'bad' is bad"):
        execute("toy", ["bad"], str(tmp_path / "o"), ToyConfig())
    assert module.calls == 0 and not (tmp_path / "o").exists()


def test_a_workers_user_error_comes_out_as_one_line(toy, tmp_path):
    wrapped = RuntimeError("task failed")
    wrapped.cause = UniqaError("bad level 'x'\nmore")
    toy("parts", fail_in_work=wrapped)
    with pytest.raises(UniqaError, match="^bad level 'x'$"):
        execute("toy", ["t"], str(tmp_path / "o"), ToyConfig())
    assert not (tmp_path / "o" / SUMMARY_FILE).exists()


@pytest.mark.parametrize("name", list(stages.STAGES))
def test_every_stage_module_is_on_the_contract(name):
    """preflight takes the stage's inputs in order, then out and cfg; work takes (plan, out, cfg, run)."""
    command = stages.stage(name)
    config, module = stages.load(name)
    params = list(inspect.signature(module.preflight).parameters)
    assert len(params) == len(command.inputs) + 2 and params[-2:] == ["out", "cfg"], (name, params)
    assert list(inspect.signature(module.work).parameters) == ["plan", "out", "cfg", "run"], name
    assert inspect.isclass(config)
