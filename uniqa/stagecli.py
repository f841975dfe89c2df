"""One command line for every stage: a :class:`StageCommand` declares a stage's inputs and flags; this module
turns it into the ``uniqa <stage>`` sub-command (``uniqa data <stage>`` for the data group; and, for a stage that
runs on Ray, into ``pipelines/<stage>.py``, which forwards to it). Every stage is listed in :mod:`uniqa.stages`.

Every stage gets the same common flags: ``--out``, ``--config FILE``, ``--set key=value``, ``--quiet`` and
``--ray-address``. The config is built as defaults <- ``--config`` file <- ``--set`` overrides <- the
stage's own flags. The config file may also name the stage's inputs and output as top-level keys (``out:``,
``manifest:``, ...), so one file drives a whole cluster job; flags win over the file.
Then the stage runs (:func:`uniqa.executor.execute`), its one-line summary is printed, and its exit code returned
(0 complete, 1 rows missing; bad input raises :class:`UniqaError`, which ``uniqa.cli`` turns into exit 2).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from uniqa.errors import UniqaError

COMMON_FLAGS = ("--out", "--config", "--set", "--quiet", "--ray-address")


def comma_list(text: str) -> list[str]:
    """An argument's comma-separated names (``--heads quality,aesthetics``), blanks dropped."""
    return [h.strip() for h in text.split(",") if h.strip()]


@dataclass(frozen=True)
class Arg:
    """One flag of a stage: an input of its run function (``key=None``) or a shortcut for a config key."""

    flag: str  # e.g. "--manifest"; a positional input is shown as its upper-case name (``NAME``)
    help: str
    key: str | None = None  # config key the flag sets (None: an input passed to the run function)
    multiple: bool = False  # repeatable; the run function gets a list
    required: bool = True  # inputs only: must come from the flag or the config file
    type: Callable[[str], Any] = str
    metavar: str | None = None
    store_true: bool = False  # a switch (config keys only)
    # inputs only: given without the flag (optional on the command line: the config file may name it)
    positional: bool = False
    short: str | None = None  # a one-letter alias, e.g. "-o"

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class StageCommand:
    name: str  # sub-command, e.g. "score"; its config class and module: uniqa.stages.load(name)
    help: str  # one line for ``uniqa --help``
    inputs: tuple[Arg, ...] = ()
    options: tuple[Arg, ...] = ()
    description: str | None = None  # longer --help text (default: help)
    group: str | None = None  # the parent command: "data" for ``uniqa data prepare``
    ray: bool = True  # the work runs on Ray: pipelines/<name>.py submits it, the demo starts Ray before it
    default_out: str | None = None  # --out when neither the flag nor the config file gives one: this folder under
    # the first input (``report``: RUN_DIR/report)

    @property
    def config(self) -> type:
        """The stage's frozen config class (imported when asked for: building the parser imports no stage code)."""
        from uniqa.stages import load

        return load(self.name)[0]

    @property
    def prog(self) -> str:
        return f"uniqa {self.group} {self.name}" if self.group else f"uniqa {self.name}"


def add_common_arguments(p: argparse.ArgumentParser, stage: str, default_out: str | None = None) -> None:
    """The flags every stage takes (see the module docstring)."""
    group = p.add_argument_group("common to every stage")
    otherwise = f", else {default_out}/ under the first input" if default_out else ""
    group.add_argument("--out", help=f"output folder, local or s3:// (default: `out:` of --config{otherwise})")
    group.add_argument("--config", help=f"YAML/JSON file of the {stage} config, local or s3:// (may also hold the "
                                        "inputs and `out:`)")
    group.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help=f"{stage} config override (repeatable), e.g. --set a.b=1")
    group.add_argument("--quiet", action="store_true", help="no progress bar and no Ray Data INFO lines")
    group.add_argument("--ray-address", help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)")


def add_arguments(p: argparse.ArgumentParser, command: StageCommand) -> None:
    for arg in command.inputs:
        help = arg.help + (" (repeatable)" if arg.multiple else "")
        if arg.positional:
            p.add_argument(arg.dest, nargs="?", type=arg.type, metavar=arg.dest.upper(), help=help)
            continue
        flags = (arg.short, arg.flag) if arg.short else (arg.flag,)
        p.add_argument(*flags, dest=arg.dest, action="append" if arg.multiple else "store", type=arg.type,
                       metavar=arg.metavar, help=help)
    for arg in command.options:
        if arg.store_true:
            p.add_argument(arg.flag, action="store_true", default=None, help=arg.help)
        else:
            p.add_argument(arg.flag, type=arg.type, metavar=arg.metavar, help=arg.help)
    add_common_arguments(p, command.name, command.default_out)


def register(sub: argparse._SubParsersAction, command: StageCommand) -> argparse.ArgumentParser:
    p = sub.add_parser(command.name, help=command.help, description=command.description or command.help,
                       formatter_class=argparse.RawDescriptionHelpFormatter, prog=command.prog)
    add_arguments(p, command)
    p.set_defaults(func=lambda args: run_command(command, args))
    return p


def resolve(command: StageCommand, args: argparse.Namespace) -> tuple[list[Any], str, Any]:
    """(the run function's inputs, out, the config) from the flags and the config file; nothing touches
    storage beyond reading the config file."""
    from uniqa.config import config_data, from_dict

    data = config_data(args.config, args.set)
    inputs = []
    for arg in command.inputs:
        value = getattr(args, arg.dest)
        from_file = data.pop(arg.dest, None)
        value = value if value is not None else from_file
        if arg.multiple:
            value = [] if value is None else [value] if isinstance(value, str) else [str(v) for v in value]
        if arg.required and not value:
            given = f"give {arg.dest.upper()}" if arg.positional else f"pass {arg.flag}"
            raise UniqaError(f"no {arg.dest}: {given} or set `{arg.dest}:` in the --config file")
        inputs.append(str(value) if isinstance(value, (str, int, float)) else value)
    out = args.out or data.pop("out", None)
    data.pop("out", None)
    if not out and command.default_out and isinstance(inputs[0], str):
        from uniqa import storage

        out = storage.join(inputs[0], command.default_out)
    if not out:
        raise UniqaError("no out: pass --out or set `out:` in the --config file")
    flags = {arg.key: getattr(args, arg.dest) for arg in command.options if getattr(args, arg.dest) is not None}
    for key, value in flags.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return inputs, str(out), from_dict(command.config, data)


def run_command(command: StageCommand, args: argparse.Namespace) -> int:
    from uniqa.executor import execute

    inputs, out, cfg = resolve(command, args)
    summary = execute(command.name, inputs, out, cfg, progress=not args.quiet, address=args.ray_address)
    print(summary.line())
    return summary.exit_code


def check_inputs(command: StageCommand, given) -> None:
    """Refuse input names (by flag name: ``input`` for ``--input``) the stage does not take, or that leave out one
    it needs."""
    names = {arg.dest for arg in command.inputs}
    if set(given) - names or {arg.dest for arg in command.inputs if arg.required} - set(given):
        raise UniqaError(f"stage {command.name} takes the inputs {', '.join(a.dest for a in command.inputs) or 'none'}"
                         f" (required: {', '.join(a.dest for a in command.inputs if a.required) or 'none'}); got "
                         f"{sorted(given)}")


def run_with(command: StageCommand, out: str, config: dict[str, Any], inputs: dict[str, Any], *,
             progress: bool = False, address: str | None = None) -> Any:
    """Run ``command``'s stage as ``uniqa <stage>`` would, from data instead of flags: ``inputs`` by flag name
    (``input`` for ``--input``; a missing optional input is None, or [] when repeatable), ``config`` as a --config
    file's contents -> its :class:`~uniqa.stage.StageSummary`. Inputs are checked by :func:`check_inputs`."""
    from uniqa.config import from_dict
    from uniqa.executor import execute

    check_inputs(command, inputs)
    values = [inputs.get(arg.dest, [] if arg.multiple else None) for arg in command.inputs]
    return execute(command.name, values, out, from_dict(command.config, config), progress=progress, address=address)
