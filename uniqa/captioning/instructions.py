"""Captioning instructions: prompts as versioned data (``prompts.yaml``), rendered with the image's level word G.

A prompt file maps ``version -> task -> {system, user, user_unlabelled, lead, lead_unlabelled}``;
the default file ships with the package and a config may point at another (local or s3://). The run's
pre-flight reads it once (:func:`task_prompts`) and hands the :class:`Prompt` of each task to the
workers, so no worker reads the prompt file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from uniqa import storage
from uniqa.errors import UniqaError
from uniqa.schema import LEVELS, TASKS

DEFAULT_FILE = str(Path(__file__).with_name("prompts.yaml"))
FIELDS = ("system", "user", "user_unlabelled", "lead", "lead_unlabelled")


@dataclass(frozen=True)
class Prompt:
    """One task's prompt at one version; ``{level}`` in ``user`` and ``lead`` is replaced by G."""

    version: str
    task: str
    system: str
    user: str
    user_unlabelled: str
    lead: str
    lead_unlabelled: str

    def __post_init__(self):
        for name in ("user", "lead"):
            if "{level}" not in getattr(self, name):
                raise UniqaError(f"prompt {self.version}/{self.task}: field {name!r} must contain {{level}}")

    def user_text(self, level: str | None) -> str:
        """The user message for an image of level ``level`` (None: unlabelled)."""
        return self.user.format(level=_check_level(level)) if level else self.user_unlabelled

    def lead_text(self, level: str | None) -> str:
        """How an attribute caption starts, e.g. "The quality of this image is poor"."""
        return self.lead.format(level=_check_level(level)) if level else self.lead_unlabelled


def _check_level(level: str) -> str:
    if level not in LEVELS:
        raise UniqaError(f"level {level!r} is not one of {list(LEVELS)}")
    return level


@lru_cache(maxsize=8)
def load_prompts(path: str = DEFAULT_FILE) -> dict[tuple[str, str], Prompt]:
    """``{(version, task): Prompt}`` from a prompt file; malformed files fail naming the bad entry."""
    try:
        data = yaml.safe_load(storage.read_bytes(path).decode("utf-8"))
    except FileNotFoundError:
        raise UniqaError(f"prompt file not found: {path}") from None
    except yaml.YAMLError as e:
        raise UniqaError(f"cannot parse prompt file {path}: {e}") from None
    if not isinstance(data, dict) or not data:
        raise UniqaError(f"prompt file {path} must map version -> task -> prompt fields")
    prompts = {}
    for version, tasks in data.items():
        for task in TASKS:
            entry = (tasks or {}).get(task) if isinstance(tasks, dict) else None
            if not isinstance(entry, dict):
                raise UniqaError(f"prompt file {path}: version {version!r} has no {task!r} prompt")
            missing = [f for f in FIELDS if not isinstance(entry.get(f), str)]
            if missing:
                raise UniqaError(f"prompt file {path}: {version}/{task} lacks field {missing[0]!r}; needs {FIELDS}")
            prompts[(str(version), task)] = Prompt(str(version), task, **{f: entry[f].strip() for f in FIELDS})
    return prompts


def get_prompt(version: str, task: str, path: str | None = None) -> Prompt:
    """The prompt of ``task`` at ``version``; an unknown version lists the known ones."""
    prompts = load_prompts(path or DEFAULT_FILE)
    if (version, task) not in prompts:
        if task not in TASKS:
            raise UniqaError(f"task {task!r} is not one of {list(TASKS)}")
        known = sorted({v for v, _ in prompts})
        raise UniqaError(f"unknown prompt_version {version!r} in {path or DEFAULT_FILE}; known: {known}")
    return prompts[(version, task)]


TaskPrompts = Mapping[str, Prompt]  # task -> its prompt at one version


def task_prompts(version: str = "v1", tasks: tuple[str, ...] = TASKS, path: str | None = None) -> dict[str, Prompt]:
    """``{task: Prompt}`` of ``tasks`` at ``version`` (reads the prompt file: a pre-flight step)."""
    return {task: get_prompt(version, task, path) for task in tasks}


def prompt_for(prompts: TaskPrompts, task: str) -> Prompt:
    """The prompt of a row's task; a task the run has no prompt for is a :class:`UniqaError` (an error row)."""
    if task not in prompts:
        raise UniqaError(f"task {task!r} is not one of {sorted(prompts)}")
    return prompts[task]
