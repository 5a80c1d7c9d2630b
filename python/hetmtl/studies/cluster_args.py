"""Command-line options shared by the study scripts and ``hetmtl study``: where the tasks run.

A script adds the options with :func:`add_cluster_arguments` and passes
``**cluster_options(args)`` to :func:`~hetmtl.studies.run_study`::

    parser = argparse.ArgumentParser()
    add_cluster_arguments(parser)
    args = parser.parse_args()
    run_study(replication, configs, n_reps, seed=1, **cluster_options(args))
"""

from __future__ import annotations

import argparse
import re
from typing import Any

__all__ = ["add_cluster_arguments", "cluster_options", "scheduler_address_arg"]

# [scheme://]host[:port]; host a name, an IPv4 address or a bracketed IPv6 address.
_ADDRESS = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+)(?::\d+)?$")


def scheduler_address_arg(text: str) -> str:
    """argparse type of a dask scheduler address (``tcp://HOST:PORT``, ``HOST:PORT``, ...)."""
    address = text.strip()
    if not _ADDRESS.match(address):
        raise argparse.ArgumentTypeError(
            f"expected a scheduler address such as tcp://10.0.0.1:8786, got {text!r}")
    return address


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler-address`` to a study's argument parser.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The script's parser (its ``--n-jobs``, if any, stays the script's own).
    """
    parser.add_argument(
        "--scheduler-address", dest="scheduler_address", metavar="ADDRESS",
        type=scheduler_address_arg, default=None,
        help="run the tasks on the dask.distributed scheduler at this address (e.g. "
             "tcp://10.0.0.1:8786) instead of local processes; --n-jobs is then ignored. The "
             "workers need hetmtl installed and the study's code importable.")


def cluster_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`~hetmtl.studies.run_study` keywords chosen by :func:`add_cluster_arguments`."""
    return {"scheduler_address": args.scheduler_address}
