"""The ``hetmtl study`` command: run a study function over a design, locally or on a cluster.

::

    hetmtl study mypackage.sims:replication --grid n=100,200 --grid eta=0,0.5 --reps 200 \\
        --seed 7 --checkpoint ckpt --output results.csv --scheduler-address tcp://10.0.0.1:8786

``MODULE:FUNCTION`` names a function ``fn(config, seed)`` as for
:func:`~hetmtl.studies.run_study`; it is imported by name, so on a cluster the module must be
importable on every worker too. The design is a grid (``--grid NAME=V1,V2,...``, repeated; values
read as JSON numbers, ``true``/``false``/``null``, or else text) or a JSON file holding a list
of configuration objects (``--configs``). The result table is written as CSV.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Callable

from .._util.io import atomic_write_bytes
from .checkpoint import CheckpointBusyError
from .cluster_args import add_cluster_arguments, cluster_options
from .runner import config_grid, run_study

__all__ = ["add_study_parser", "run_study_command"]

_TASK_NOTE = "hetmtl.studies: raised for"


def _grid_axis(text: str) -> tuple[str, list[Any]]:
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,..., got {text!r}")
    return name.strip(), [_value(v.strip()) for v in values.split(",")]


def _value(text: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if value is None or isinstance(value, (bool, int, float)) else text


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def add_study_parser(subparsers: Any) -> None:
    """Add the ``study`` subcommand to the ``hetmtl`` command's subparsers."""
    p = subparsers.add_parser(
        "study", help="run a simulation study function over a design, locally or on dask",
        description="Run fn(config, seed) for every configuration and replication with "
        "hetmtl.studies.run_study (resumable with --checkpoint; on a dask.distributed cluster "
        "with --scheduler-address) and write the results as CSV.")
    p.add_argument("function", metavar="MODULE:FUNCTION",
                   help="the study function, importable (also on the workers)")
    design = p.add_mutually_exclusive_group(required=True)
    design.add_argument("--grid", type=_grid_axis, action="append", metavar="NAME=V1,V2,...",
                        help="one axis of a full grid of configurations (repeat per axis)")
    design.add_argument("--configs", metavar="CONFIGS.json",
                        help="a JSON list of configuration objects")
    p.add_argument("--reps", type=_non_negative_int, required=True,
                   help="replications per configuration")
    p.add_argument("--seed", type=_non_negative_int, required=True, help="root seed of the study")
    p.add_argument("--seed-keys", nargs="*", metavar="KEY", default=None,
                   help="configuration keys that identify the random streams (default: all)")
    p.add_argument("--n-jobs", type=int, default=1,
                   help="local worker processes (1; -1: all cores)")
    p.add_argument("--checkpoint", metavar="DIR", help="folder for resumable results")
    p.add_argument("-o", "--output", required=True, metavar="RESULTS.csv")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="hide the progress bar")
    add_cluster_arguments(p)
    p.set_defaults(func=run_study_command)


def _load_function(spec: str) -> Callable:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"MODULE:FUNCTION: expected e.g. mypackage.sims:replication, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"MODULE:FUNCTION: cannot import {module_name!r} ({exc})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"MODULE:FUNCTION: {module_name!r} has no function {attr!r}")
    return fn


def _load_configs(args: argparse.Namespace) -> Any:
    if args.grid:
        names = [name for name, _ in args.grid]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"--grid: axis {repeated[0]!r} given more than once")
        return config_grid(**dict(args.grid))
    try:
        return json.loads(Path(args.configs).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"--configs: cannot read {args.configs!r} ({exc})") from None


def run_study_command(args: argparse.Namespace) -> int:
    """Run ``hetmtl study``; input errors are one line on standard error with exit status 2."""
    try:
        fn = _load_function(args.function)
        results = run_study(fn, _load_configs(args), args.reps, seed=args.seed,
                            n_jobs=args.n_jobs, checkpoint=args.checkpoint,
                            progress=args.progress, seed_keys=args.seed_keys,
                            **cluster_options(args))
    except (ValueError, OSError, CheckpointBusyError) as exc:
        if any(_TASK_NOTE in note for note in getattr(exc, "__notes__", ())):
            raise  # the study function itself failed: its traceback is what helps
        print(f"hetmtl study: error: {exc}", file=sys.stderr)
        return 2
    atomic_write_bytes(args.output, results.to_csv(index=False).encode("utf-8"))
    print(f"wrote {len(results)} rows to {args.output}")
    return 0
