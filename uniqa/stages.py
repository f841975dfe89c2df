"""Every stage, in data-flow order: the one registry the command line, ``pipelines/``, the demo's recipe and the
tests find stages in. A stage is a :class:`~uniqa.stagecli.StageCommand` declared in its package's ``cli.py``
(name, inputs, flags); :func:`load` says where its config class and its module (``preflight`` and ``work``, the
contract of :mod:`uniqa.stage`, run by :func:`uniqa.executor.execute`) live, and imports them only when a stage
runs, so that ``uniqa --help`` stays light."""

from __future__ import annotations

from types import ModuleType

from uniqa.adapters.cli import COMMAND as ADAPT
from uniqa.captioning.cli import COMMAND as CAPTION
from uniqa.corpus.cli import COMMAND as CORPUS
from uniqa.curation.cli import COMMAND as FILTER
from uniqa.data.cli import PREPARE, SAMPLE
from uniqa.errors import UniqaError
from uniqa.evaluation.cli import COMMAND as EVALUATE
from uniqa.features.cli import COMMAND as FEATURES
from uniqa.purification.cli import COMMAND as PURIFY
from uniqa.report.cli import COMMAND as REPORT
from uniqa.scoring.cli import COMMAND as SCORE
from uniqa.stagecli import StageCommand
from uniqa.training.cli import COMMAND as PRETRAIN
from uniqa.training.cli import INIT
from uniqa.tuning.cli import COMMAND as TUNE

STAGES: dict[str, StageCommand] = {c.name: c for c in (
    SAMPLE, PREPARE, CAPTION, PURIFY, CORPUS, INIT, PRETRAIN, FEATURES, ADAPT, TUNE, SCORE, FILTER, EVALUATE,
    REPORT)}


def stage(name: str) -> StageCommand:
    """The stage called ``name`` (``uniqa <name>``; ``sample`` and ``prepare`` are ``uniqa data <name>``)."""
    if name not in STAGES:
        raise UniqaError(f"unknown stage {name!r}; the stages are {', '.join(STAGES)}")
    return STAGES[name]


def load(name: str) -> tuple[type, ModuleType]:
    """(config class, stage module) of stage ``name``, imported now."""
    match name:
        case "sample":
            from uniqa.data import sample_run as stage
            from uniqa.data.sample_run import SampleConfig as config
        case "prepare":
            from uniqa.data import prepare_run as stage  # -o KEY=VALUE items -> the source options
            from uniqa.data.prepare import PrepareConfig as config
        case "caption":
            from uniqa.captioning import run as stage
            from uniqa.captioning.config import CaptionConfig as config
        case "purify":
            from uniqa.purification import run as stage
            from uniqa.purification.config import PurifyConfig as config
        case "corpus":
            from uniqa.corpus import run as stage
            from uniqa.corpus.config import CorpusConfig as config
        case "init":
            from uniqa.training import init as stage
            from uniqa.training.config import PretrainConfig as config
        case "pretrain":
            from uniqa.training import run as stage
            from uniqa.training.config import PretrainConfig as config
        case "features":
            from uniqa.features import run as stage
            from uniqa.features.config import FeaturesConfig as config
        case "adapt":
            from uniqa.adapters import run as stage
            from uniqa.adapters.config import AdaptConfig as config
        case "tune":
            from uniqa.tuning import sweep as stage
            from uniqa.tuning.config import TuneConfig as config
        case "score":
            from uniqa.scoring import run as stage
            from uniqa.scoring.config import ScoreConfig as config
        case "filter":
            from uniqa.curation import run as stage
            from uniqa.curation.config import FilterConfig as config
        case "evaluate":
            from uniqa.evaluation import run as stage
            from uniqa.evaluation.config import EvaluateConfig as config
        case "report":
            from uniqa.report import run as stage
            from uniqa.report.run import ReportConfig as config
        case _:
            raise UniqaError(f"unknown stage {name!r}; the stages are {', '.join(STAGES)}")
    return config, stage
