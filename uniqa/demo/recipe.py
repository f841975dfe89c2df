"""The demo's recipe as data: ``uniqa/demo/recipe.yaml`` (or the file ``uniqa demo --recipe`` names) read into
:class:`Step` records, checked against the stage registry before anything runs."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uniqa.errors import UniqaError

RECIPE = Path(__file__).with_name("recipe.yaml")
CHECKOUT = Path(__file__).resolve().parents[2]  # config_file paths not found from the working directory
OUT = "{out}"  # the run folder, in any value of a step
TOP_KEYS, STEP_KEYS = {"ray_cpus", "shared", "steps"}, {"name", "stage", "config", "config_file", "calls", "progress"}


@dataclass(frozen=True)
class Step:
    """One step: a stage run (once per call) into ``OUT/<name>``; values hold :data:`OUT` for the run folder."""

    name: str  # its output folder under OUT; also its key in configs.json and the state
    stage: str  # its stage in uniqa.stages
    config: dict  # the config the stage gets (a --config file's contents)
    calls: tuple[dict, ...] = ({},)  # inputs of each call, by flag name
    needs: tuple[str, ...] = ()  # the steps whose outputs it reads (those its values name)
    progress: bool = False  # the stage's own progress output (pre-training's step lines)

    def config_at(self, out: str) -> dict:
        return at(self.config, out)

    def calls_at(self, out: str) -> list[dict]:
        return [at(call, out) for call in self.calls]


@dataclass(frozen=True)
class Recipe:
    steps: tuple[Step, ...]
    ray_cpus: int  # the logical CPUs of the demo's Ray session
    source: str  # the file it was read from

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)


def at(value: Any, out: str) -> Any:
    """``value`` with :data:`OUT` replaced by the run folder in every string."""
    if isinstance(value, str):
        return value.replace(OUT, out.rstrip("/"))
    if isinstance(value, dict):
        return {k: at(v, out) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [at(v, out) for v in value]
    return value


def strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from strings(v)


def reads(name: str, value: Any, earlier: list[str]) -> tuple[str, ...]:
    """The earlier steps whose folders ``value`` names (``{out}/<step>[/...]``); a folder no earlier step writes
    is refused."""
    found = []
    for text in strings(value):
        for path in re.findall(r"\{out\}/([^\s,;=]+)", text):
            owners = [s for s in earlier if path == s or path.startswith(s + "/")]
            if not owners:
                raise UniqaError(f"recipe step {name!r} reads {{out}}/{path}, which no earlier step writes")
            owner = max(owners, key=len)
            if owner not in found:
                found.append(owner)
    return tuple(found)


def config_file(path: str) -> dict:
    from uniqa.config import read_config_file

    for candidate in (Path(path), CHECKOUT / path):
        if candidate.is_file():
            return read_config_file(str(candidate))
    raise UniqaError(f"recipe config_file {path} not found (from the working directory or {CHECKOUT})")


def load_recipe(path: str | None = None) -> Recipe:
    """Read and check a recipe: known keys and stages, unique step names, each call's inputs taken by its stage,
    each config loading into its stage's config class, and steps reading only earlier steps."""
    import yaml

    from uniqa import storage
    from uniqa.config import from_dict, merge
    from uniqa.stagecli import check_inputs
    from uniqa.stages import stage

    source = str(path or RECIPE)
    try:
        data = yaml.safe_load(storage.read_bytes(source))
    except FileNotFoundError:
        raise UniqaError(f"recipe {source} not found") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list) or set(data) - TOP_KEYS:
        raise UniqaError(f"recipe {source}: expected a mapping of {', '.join(sorted(TOP_KEYS))} with a list of steps")
    steps: list[Step] = []
    for i, raw in enumerate(data["steps"], 1):
        if not isinstance(raw, dict) or not {"name", "stage"} <= set(raw) or set(raw) - STEP_KEYS:
            raise UniqaError(f"recipe {source} step {i}: expected name, stage and any of config, config_file, "
                             f"calls, progress; got {raw!r}")
        name, command = str(raw["name"]), stage(str(raw["stage"]))
        if any(s.name == name for s in steps):
            raise UniqaError(f"recipe {source}: two steps named {name!r}")
        config = copy.deepcopy(raw.get("config") or {})
        if raw.get("config_file"):
            config = merge(config_file(raw["config_file"]), config)
        calls = tuple(copy.deepcopy(raw.get("calls") or [{}]))
        try:
            for call in calls:
                check_inputs(command, call)
            from_dict(command.config, at(config, "/out"))
        except UniqaError as e:
            raise UniqaError(f"recipe step {name!r}: {e}") from e
        needs = reads(name, (config, calls), [s.name for s in steps])
        steps.append(Step(name, command.name, config, calls, needs, bool(raw.get("progress", False))))
    return Recipe(tuple(steps), int(data.get("ray_cpus", 2)), source)
