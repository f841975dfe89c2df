"""The package's shape: every module imports, the internal import graph has no cycle, and every stage has the
same command line (``uniqa <stage> --help`` and ``pipelines/<stage>.py --help``, with the common flags)."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path

import pytest

import uniqa
from uniqa import stages
from uniqa.stagecli import COMMON_FLAGS
from uniqa.stages import STAGES

ROOT = Path(uniqa.__file__).resolve().parent  # uniqa/
REPO = ROOT.parent
OPTIONAL_EXTRAS = ("vllm",)  # top-level modules of optional extras (pyproject: uniqa[vllm]); absent here is fine

# ------------------------------------------------------------------------------------------ imports


def module_files() -> dict[str, Path]:
    """``uniqa.x.y`` -> its file, for every .py file of the package (a package is its ``__init__.py``)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _module_level(nodes: list[ast.stmt]):
    """Import statements that run when the module is imported: not inside functions, nor under
    ``if TYPE_CHECKING:``; class bodies, ``try`` and other ``if`` blocks do run."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _module_level(node.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from _module_level(getattr(node, field, None) or [])


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``uniqa`` modules it imports at module level (relative imports resolved; for
    ``from P import name`` both ``P`` and, when it is a module, ``P.name``)."""
    files = module_files()
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _module_level(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]


def test_graph_reads_relative_and_nested_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "uniqa"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\nimport uniqa.c\n")
    (pkg / "c.py").write_text("def f():\n    from uniqa import a\n")  # inside a function: not counted
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("from ..a import x\ntry:\n    from uniqa.c import y\nexcept ImportError:\n"
                                      "    pass\nif TYPE_CHECKING:\n    from uniqa.sub import z\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    graph = import_graph()
    assert graph == {"uniqa": set(), "uniqa.a": {"uniqa.sub", "uniqa.sub.b", "uniqa.c"}, "uniqa.c": set(),
                     "uniqa.sub": {"uniqa.sub.b"}, "uniqa.sub.b": {"uniqa.a", "uniqa.c"}}
    assert find_cycle(graph) == ["uniqa.a", "uniqa.sub", "uniqa.sub.b", "uniqa.a"]


def test_package_import_graph_has_no_cycle():
    graph = import_graph()
    assert len(graph) > 40 and "uniqa.scoring.config" in graph["uniqa.scoring.run"]  # the graph is really read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in the package: " + " -> ".join(cycle)


@pytest.mark.slow
def test_every_module_imports():
    names = [m.name for m in pkgutil.walk_packages(uniqa.__path__, "uniqa.")]
    unlisted = sorted(set(module_files()) - set(names) - {"uniqa"})
    assert not unlisted, f"modules that pkgutil does not find (a folder without __init__.py?): {unlisted}"
    skipped = []
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] not in OPTIONAL_EXTRAS:
                raise
            skipped.append(name)
    assert len(skipped) <= 2, skipped


# ------------------------------------------------------------------------------------- command lines


def stage_parser(command) -> argparse.ArgumentParser:
    from uniqa.cli import build_parser

    def sub(parser):
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    parser = sub(build_parser()).choices[command.group or command.name]
    return sub(parser).choices[command.name] if command.group else parser


def help_text(main, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_stages_are_registered():
    from uniqa.stagecli import StageCommand

    assert list(STAGES)[:2] == ["sample", "prepare"] and "score" in STAGES
    assert all(isinstance(c, StageCommand) and c.name == name for name, c in STAGES.items())
    for command in STAGES.values():  # config class and stage module, imported when asked for
        module = stages.load(command.name)[1]
        assert dataclasses.is_dataclass(command.config) and callable(module.preflight) and callable(module.work)


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_help_lists_the_common_flags(name, capsys):
    from uniqa.cli import main

    command = STAGES[name]
    parser = stage_parser(command)
    common = next(g for g in parser._action_groups if g.title == "common to every stage")
    assert tuple(a.option_strings[0] for a in common._group_actions) == COMMON_FLAGS
    flags = {s for a in parser._actions for s in a.option_strings if s.startswith("--")}
    own = {a.flag for a in (*command.inputs, *command.options) if not a.positional}
    assert flags == {"--help"} | own | set(COMMON_FLAGS), "flags outside the stage command and the common ones"
    assert not own & set(COMMON_FLAGS)
    text = help_text(main, [*command.prog.split()[1:], "--help"], capsys)
    assert text.startswith(f"usage: {command.prog} ") and "common to every stage:" in text
    for flag in (*COMMON_FLAGS, *own):
        assert f"{flag} " in text or f"{flag}\n" in text, flag


@pytest.mark.parametrize("name", [name for name, c in STAGES.items() if c.ray or (REPO / "pipelines" / f"{name}.py")
                                  .is_file()])
def test_pipeline_forwards_to_the_stage_command_line(name, capsys):
    from uniqa.cli import main

    command = STAGES[name]
    path = REPO / "pipelines" / f"{command.name}.py"
    assert path.is_file(), f"stage {command.name} has no {path.relative_to(REPO)}"
    spec = importlib.util.spec_from_file_location(f"pipelines_{command.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert help_text(module.main, ["--help"], capsys) == help_text(main, [command.name, "--help"], capsys)


@pytest.mark.slow
def test_pipeline_script_runs_as_a_script():
    import subprocess

    done = subprocess.run([sys.executable, str(REPO / "pipelines" / "score.py"), "--help"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: uniqa score ") and all(f in done.stdout for f in COMMON_FLAGS)
