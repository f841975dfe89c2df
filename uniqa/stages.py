"""Every stage, in data-flow order: the one registry the command line, ``pipelines/``, the demo's recipe and the
tests find stages in. A stage is a :class:`~uniqa.stagecli.StageCommand` declared in its package's ``cli.py``
(name, inputs, flags); :func:`load` says where its config class and run function live, and imports them only when
a stage runs, so that ``uniqa --help`` stays light."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


def load(name: str) -> tuple[type, Callable[..., Any]]:
    """(config class, run function) of stage ``name``, imported now."""
    match name:
        case "sample":
            from uniqa.data.sample_run import SampleConfig as config
            from uniqa.data.sample_run import run_sample as run
        case "prepare":
            from uniqa.data.cli import run_prepare as run  # -o KEY=VALUE items -> the source's options
            from uniqa.data.prepare import PrepareConfig as config
        case "caption":
            from uniqa.captioning.config import CaptionConfig as config
            from uniqa.captioning.run import run_caption as run
        case "purify":
            from uniqa.purification.config import PurifyConfig as config
            from uniqa.purification.run import run_purify as run
        case "corpus":
            from uniqa.corpus.config import CorpusConfig as config
            from uniqa.corpus.run import run_corpus as run
        case "init":
            from uniqa.training.config import PretrainConfig as config
            from uniqa.training.init import run_init as run
        case "pretrain":
            from uniqa.training.config import PretrainConfig as config
            from uniqa.training.run import run_pretrain as run
        case "features":
            from uniqa.features.config import FeaturesConfig as config
            from uniqa.features.run import run_features as run
        case "adapt":
            from uniqa.adapters.config import AdaptConfig as config
            from uniqa.adapters.run import run_adapt as run
        case "tune":
            from uniqa.tuning.config import TuneConfig as config
            from uniqa.tuning.sweep import run_tune as run
        case "score":
            from uniqa.scoring.config import ScoreConfig as config
            from uniqa.scoring.run import run_score as run
        case "filter":
            from uniqa.curation.config import FilterConfig as config
            from uniqa.curation.run import run_filter as run
        case "evaluate":
            from uniqa.evaluation.config import EvaluateConfig as config
            from uniqa.evaluation.run import run_evaluate as run
        case _:
            raise UniqaError(f"unknown stage {name!r}; the stages are {', '.join(STAGES)}")
    return config, run
