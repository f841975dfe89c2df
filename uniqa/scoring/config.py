"""``ScoreConfig``: what to score with (model, heads, views) and how (batching, actors, resources).

One config file drives ``uniqa score`` and ``pipelines/score.py`` on a cluster (see cluster/score.yaml).
``ScoreConfig()`` checks types, ranges and names only (view protocols, prompt sets, head syntax) and never
touches storage: whether a head is a trained head or a prompt set is decided from its text alone.
:func:`preflight` does every check that reads storage or a model config (weights exist, trained heads hold
their config, the image size fits the model) once, on the driver, before any Ray work, and returns the
resolved config the model actors are given as is.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, replace

from uniqa import storage
from uniqa.errors import UniqaError

PRECISIONS = ("fp32", "fp16", "bf16")
INPUT_FORMATS = ("auto", "manifest", "images", "list")
HEAD_FILE_SUFFIX = ".safetensors"
CLASSIC_BLOCK_ROWS = 256  # rows per decode task when only classic heads run (no views, no model)
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")


@dataclass(frozen=True)
class HeadSpec:
    """One output column: a zero-shot prompt-set head (``source`` = prompt-set name), a trained head
    (``source`` = the folder ``save_head`` wrote, or its ``head.safetensors``) or a classic metric (``source`` in
    :data:`uniqa.classic.CLASSIC_METRICS`: computed from the decoded image, no model)."""

    name: str
    source: str

    @property
    def trained(self) -> bool:
        """A trained head (``source`` is a path: :func:`uniqa.storage.looks_like_path`, or ends with
        :data:`HEAD_FILE_SUFFIX`) rather than a prompt-set name; decided from the text, never from storage."""
        return storage.looks_like_path(self.source) or self.source.endswith(HEAD_FILE_SUFFIX)

    @property
    def classic(self) -> bool:
        """A classic no-reference metric (NIQE, BRISQUE, PIQE): no model, oriented higher-is-better, with its
        published value in ``<name>_raw``."""
        from uniqa.classic import CLASSIC_METRICS

        return not self.trained and self.source in CLASSIC_METRICS

    @property
    def folder(self) -> str:
        """The head folder (``load_head`` takes the folder)."""
        if self.source.endswith(HEAD_FILE_SUFFIX):
            return posixpath.dirname(self.source) or "."
        return self.source


def parse_head(text: str) -> HeadSpec:
    """``quality`` (zero-shot prompt set, column ``quality``), ``q=quality-ensemble`` (a prompt set under
    another column name), ``quality=runs/adapt/quality`` (a trained head folder or its .safetensors; a
    folder in the working directory is ``quality=./quality``) or ``niqe`` / ``brisque`` / ``piqe`` (a classic
    metric). Checks the syntax only."""
    name, sep, source = (part.strip() for part in str(text).partition("="))
    if not sep:
        source = name
        if HeadSpec(name, name).trained:
            raise UniqaError(f"head {text!r}: name the column of a trained head, e.g. quality={text}")
    if not name or not source or not _COLUMN_NAME.match(name):
        raise UniqaError(f"head {text!r} is not NAME, NAME=PROMPT_SET or NAME=HEAD_FOLDER")
    return HeadSpec(name, source)


def _check_prompt_set(spec: HeadSpec) -> None:
    """A zero-shot head names a registered prompt set (a lookup by name: no storage)."""
    from uniqa.adapters.prompts import get_prompt_set

    try:
        get_prompt_set(spec.source)
    except UniqaError as e:
        raise UniqaError(f"head {spec.name!r}: {e}; or give a trained head as {spec.name}=HEAD_FOLDER "
                         f"(a folder in the working directory: {spec.name}=./{spec.source})") from None


@dataclass(frozen=True)
class ScoreConfig:
    model: str = ""  # model name (e.g. ViT-B-16-quickgelu, uniqa-tiny) or checkpoint (see uniqa.models)
    pretrained: str | None = None  # weights: checkpoint path or open_clip tag (None: model's checkpoint, or random)
    heads: tuple[str, ...] = ("quality", "aesthetics")  # NAME | NAME=PROMPT_SET | NAME=HEAD_FOLDER | niqe|brisque|piqe
    views: str = "crops10"  # view protocol (uniqa.data.views.VIEW_PROTOCOLS): crops10 | five | full
    image_size: int | None = None  # view size in pixels: the model's input size (None: preflight reads it)
    seed: int = 0  # seed of the random crops (same crops for an image in every run)
    decode_size: int | None = None  # shorter side resized to this for every row (JPEG draft mode); None: a manifest
    # row's decode_size (SPAQ: 448), else as stored
    pos_embedding: bool | None = None  # image tower with its positional embedding; None: the trained heads', else true
    max_pixels: int = 120_000_000  # decompression-bomb limit per image
    precision: str = "fp32"  # fp32 | fp16 | bf16 (half precision only on GPU)
    embeddings: bool = False  # also write the image embedding (list<float32>)
    batch_size: int = 64  # images per model actor call (each with its views)
    views_per_pass: int = 64  # views per encoder pass: fixed, so scores do not depend on batch_size
    num_actors: int = 1  # model actors (each loads the model once)
    num_gpus: float | None = None  # GPUs per actor, fractional ok (None: 1 if the cluster has GPUs, else 0)
    num_cpus: float = 1.0  # CPUs per model actor (its torch threads follow: uniqa.runtime; < 1 on a tiny test box)
    decode_cpus: float = 1.0  # CPUs per decode + views task
    threads: int | None = None  # torch threads of a CPU model actor (None: the thread policy, max(1, floor(num_cpus)))
    rows_per_block: int | None = None  # rows per decode task; None: as many as fill 64 MiB of views
    rows_per_file: int = 1024  # rows per output Parquet file (the unit of resume)
    input_format: str = "auto"  # auto | manifest | images | list

    def __post_init__(self):
        object.__setattr__(self, "heads", tuple(self.heads) if not isinstance(self.heads, str) else (self.heads,))
        specs = self.head_specs
        if not specs:
            raise UniqaError("no heads: name at least one, e.g. --heads quality,aesthetics")
        if not self.model and self.model_heads:
            raise UniqaError(f"no model: heads {[s.name for s in self.model_heads]} need one; pass --model "
                             "NAME_OR_CHECKPOINT or set model in the config (classic heads alone need none)")
        names = [s.name for s in specs]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise UniqaError(f"head {dup!r} is given twice in heads {list(self.heads)}")
        for spec in specs:
            if not spec.trained and not spec.classic:
                _check_prompt_set(spec)
        self._check_choices()
        self._check_numbers()
        if self.embeddings and not self.model_heads:
            raise UniqaError("embeddings need a model: heads are all classic metrics, which have none")
        if self.precision == "fp16" and self.num_gpus == 0:
            raise UniqaError("precision fp16 needs GPUs, but num_gpus is 0; use fp32 or bf16")
        if self.pos_embedding not in (None, True, False):
            raise UniqaError(f"pos_embedding must be true, false or null, got {self.pos_embedding!r}")

    def _check_choices(self) -> None:
        from uniqa.data.views import VIEW_PROTOCOLS

        for field, value, valid in (
            ("views", self.views, VIEW_PROTOCOLS),
            ("precision", self.precision, PRECISIONS),
            ("input_format", self.input_format, INPUT_FORMATS),
        ):
            if value not in valid:
                raise UniqaError(f"{field} must be one of {list(valid)}, got {value!r}")

    def _check_numbers(self) -> None:
        positive = ("batch_size", "views_per_pass", "num_actors", "rows_per_file", "max_pixels")
        for field in positive:
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UniqaError(f"{field} must be a positive integer, got {value!r}")
        for field in ("image_size", "decode_size", "rows_per_block", "threads"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UniqaError(f"{field} must be a positive integer or null, got {value!r}")
        for field in ("num_gpus", "num_cpus", "decode_cpus"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, (int, float)) or value < 0):
                raise UniqaError(f"{field} must be a number >= 0, got {value!r}")

    @property
    def head_specs(self) -> tuple[HeadSpec, ...]:
        return tuple(parse_head(h) for h in self.heads)

    @property
    def head_names(self) -> list[str]:
        return [s.name for s in self.head_specs]

    @property
    def model_heads(self) -> tuple[HeadSpec, ...]:
        """The heads the model computes (prompt sets and trained heads); none: no model is loaded."""
        return tuple(s for s in self.head_specs if not s.classic)

    @property
    def classic_heads(self) -> tuple[HeadSpec, ...]:
        """The classic metric heads, computed from each decoded image in the decode tasks."""
        return tuple(s for s in self.head_specs if s.classic)

    def block_rows(self, image_size: int | None, total: int | None = None) -> int:
        """Rows per decode task: ``rows_per_block``, or as many images as fill 64 MiB with their uint8 views
        (:func:`uniqa.runtime.views_block_rows`; with ``total`` rows, every model actor gets two blocks)."""
        if self.rows_per_block is not None:
            return self.rows_per_block
        from uniqa.data.views import VIEW_COUNTS
        from uniqa.runtime import VIEWS_BLOCK_BYTES, views_block_rows

        if image_size is None:  # classic heads only: no views; a task of CLASSIC_BLOCK_ROWS images is seconds
            return views_block_rows(VIEWS_BLOCK_BYTES // CLASSIC_BLOCK_ROWS, total, self.num_actors)
        return views_block_rows(VIEW_COUNTS[self.views] * image_size * image_size * 3, total, self.num_actors)

    def decode_config(self):
        from uniqa.data.images import DecodeConfig

        return DecodeConfig(size=self.decode_size, max_pixels=self.max_pixels)


# ------------------------------------------------------------------------------ pre-flight (reads storage)


def preflight(cfg: ScoreConfig) -> ScoreConfig:
    """Every check of ``cfg`` that reads storage or a model config, run once on the driver before any Ray
    work (``run_score``) or model loading (``Scorer``): the model (an architecture, or a checkpoint whose
    config names it), the weights (a path that exists, or an open_clip tag of the model), each trained head
    (its folder holds the head config), the image size and each classic head's installed parameters. Returns
    ``cfg`` with the model resolved to (architecture, weights), ``image_size`` filled in and ``pos_embedding``
    decided (:func:`resolve_pos_embedding`): what the model actors are given, unchecked again. With classic heads
    only, no model: ``model`` and ``image_size`` come back empty."""
    from uniqa.adapters.head import HEAD_CONFIG
    from uniqa.classic import implementation
    from uniqa.models.factory import model_image_size, pretrained_tag, resolve_model

    for spec in cfg.classic_heads:
        implementation(spec.source)  # its parameters are installed (uniqa[classic])
    if not cfg.model_heads:
        return replace(cfg, model="", pretrained=None, image_size=None)
    name, pretrained = resolve_model(cfg.model, cfg.pretrained)
    size = model_image_size(name)  # also: the model name is known
    pretrained_tag(name, pretrained)  # a path must exist; a tag must be one of the model's
    if cfg.image_size not in (None, size):
        raise UniqaError(f"image_size {cfg.image_size} does not fit model {name}, which takes {size} px views")
    for spec in cfg.head_specs:
        if spec.trained and not storage.exists(storage.join(spec.folder, HEAD_CONFIG)):
            raise UniqaError(f"head {spec.name!r}: no trained head at {spec.source} ({HEAD_CONFIG} not found)")
    switch = resolve_pos_embedding(cfg)
    if not switch:
        from uniqa.models.encoder import check_positional_embedding

        check_positional_embedding(name)
    return replace(cfg, model=name, pretrained=pretrained, image_size=size, pos_embedding=switch)


def resolve_pos_embedding(cfg: ScoreConfig) -> bool:
    """Whether the image tower runs with its positional embedding: as every trained head was trained (its
    ``head.json``), ``cfg.pos_embedding`` when set (a trained head that disagrees is refused), else true. Trained
    heads that disagree among themselves cannot share one encoder pass: refused."""
    from uniqa.adapters.head import HEAD_CONFIG, read_head_config

    trained = {s.name: read_head_config(s.folder)["pos_embedding"] for s in cfg.head_specs if s.trained}
    if cfg.pos_embedding is not None:
        wrong = next((n for n, v in trained.items() if v != cfg.pos_embedding), None)
        if wrong is not None:
            raise UniqaError(f"head {wrong!r} was trained with pos_embedding={_bool(trained[wrong])} (its "
                             f"{HEAD_CONFIG}), but pos_embedding is {_bool(cfg.pos_embedding)}: its scores would "
                             "not mean anything; leave pos_embedding unset to follow the head")
        return cfg.pos_embedding
    if len(set(trained.values())) > 1:
        on, off = (sorted(n for n, v in trained.items() if v is flag) for flag in (True, False))
        raise UniqaError(f"heads {on} were trained with pos_embedding=true and {off} with false: one encoder pass "
                         "cannot serve both; score them in separate runs")
    return next(iter(trained.values()), True)


def _bool(value: bool) -> str:
    return "true" if value else "false"


