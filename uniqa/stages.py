"""Every stage, in data-flow order: the one registry the command line, ``pipelines/``, the demo's recipe and the
tests find stages in. A stage is a :class:`~uniqa.stagecli.StageCommand` declared in its package's ``cli.py``
(inputs, flags, and a ``load`` that imports its config class and run function only when called)."""

from __future__ import annotations

from uniqa.adapters.cli import COMMAND as ADAPT
from uniqa.captioning.cli import COMMAND as CAPTION
from uniqa.corpus.cli import COMMAND as CORPUS
from uniqa.curation.cli import COMMAND as FILTER
from uniqa.data.cli import PREPARE, SAMPLE
from uniqa.errors import UniqaError
from uniqa.evaluation.cli import COMMAND as EVALUATE
from uniqa.features.cli import COMMAND as FEATURES
from uniqa.purification.cli import COMMAND as PURIFY
from uniqa.scoring.cli import COMMAND as SCORE
from uniqa.stagecli import StageCommand
from uniqa.training.cli import COMMAND as PRETRAIN
from uniqa.training.cli import INIT
from uniqa.tuning.cli import COMMAND as TUNE

STAGES: dict[str, StageCommand] = {c.name: c for c in (
    SAMPLE, PREPARE, CAPTION, PURIFY, CORPUS, INIT, PRETRAIN, FEATURES, ADAPT, TUNE, SCORE, FILTER, EVALUATE)}


def stage(name: str) -> StageCommand:
    """The stage called ``name`` (``uniqa <name>``; ``sample`` and ``prepare`` are ``uniqa data <name>``)."""
    if name not in STAGES:
        raise UniqaError(f"unknown stage {name!r}; the stages are {', '.join(STAGES)}")
    return STAGES[name]
