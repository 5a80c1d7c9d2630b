"""Simulation study of late fusion: per-site DML, then fusion of the site summaries.

Each replication simulates K sites (``hetmtl.simulate.make_late_fusion_sites``), fits
:class:`~hetmtl.fusion.site_dml.SiteDML` on every site's rows, and compares, against the true
site parameters:

* ``individual``: each site's own DML estimate and its Wald interval;
* ``pooled``: the fixed-effect (inverse-variance) pool of the site estimates, used for every site;
* ``late_fusion``: :class:`~hetmtl.fusion.late_fusion.LateFusion` with precision weights, lambda
  by summary-level cross-validation, bootstrap intervals;
* ``late_fusion_hessian``: the same with ``weight="hessian"``;
* ``robust_eb``: the default method of ``LateFusion`` (robust empirical Bayes, bootstrap
  intervals);
* ``oracle``: each site's estimate from the orthogonal score with the true nuisance functions.

Metrics per method and replication: per-site squared error ``||theta_hat_k - theta_k||^2``
averaged and maximized over all sites and over the non-outlying sites, interval coverage and
width, and for late fusion the coverage on sites left unfused, the number of fused sites and the
chosen lambda.

With ``--panel`` it runs instead the panel of :mod:`hetmtl.studies.late_fusion_panel`: site
estimates drawn from their sampling distribution (own DML, fixed-effect pooling, BLUP with DL and
REML tau^2 and the default robust empirical Bayes side by side, batched over ``--chunk``
replications per task); with ``--rows oracle`` or ``--rows forest`` real DML on simulated rows of
the same designs (:mod:`hetmtl.studies.late_fusion_rows`, the penalized late fusion with
cross-validated lambda included); with ``--tradeoffs`` the two trade-off tables of
:mod:`hetmtl.studies.late_fusion_tradeoffs`; with ``--oracle`` the default against Bayes rules that
know the prior (:mod:`hetmtl.studies.late_fusion_oracle`); with ``--ebci`` the default's intervals
against robust empirical-Bayes critical values (:mod:`hetmtl.studies.late_fusion_ebci`); with
``--gmodel`` nonparametric empirical Bayes (``gmodel_eb``) runs next to the other methods; with
``--double-bootstrap`` the default's intervals with levels calibrated by a double bootstrap
(``robust_eb_double``) and with ``--bootstrap-sites`` the sites' bootstrap intervals (the previous
default, ``robust_eb_bootstrap``) do. The commands behind the published results are in
``docs/studies/late_fusion/README.md``.

Run ``python scripts/study_late_fusion.py --help``. The study goes through
:func:`hetmtl.studies.run_study`: replications run in parallel, results are checkpointed in
``OUT_DIR/checkpoint`` and an interrupted run resumes there (delete the folder, or use another
``--out-dir``, after changing this file). Outputs in ``OUT_DIR``: ``results.csv`` (one row per
replication and method), ``summary.csv`` (Monte-Carlo means with standard errors) and one figure
per design, ``error_<design>.png`` (error and coverage against eta).

Cost: the full design has 594 design points; at 100 replications that is 59,400 replications of
10 to 30 site fits each. With OLS nuisances a replication takes about a second of one core
(K = 10), with forests of the order of a minute (p = 5 fits six nuisances per fold), so the full
study with forests is a job for a cluster (``--scheduler-address``); narrow the axes for a
workstation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from hetmtl.fusion.late_fusion import LateFusion
from hetmtl.fusion.site_dml import SiteDML
from hetmtl.simulate import make_late_fusion_sites
from hetmtl.studies import config_grid, run_study, summarize_study
from hetmtl.studies.cluster_args import add_cluster_arguments, cluster_options

LEARNERS = ("linear", "lasso", "forest")
METHODS = ("individual", "pooled", "late_fusion", "late_fusion_hessian", "robust_eb", "oracle")
# Configuration keys that fix the simulated data sets: every eta (and every learner) sees the
# same X, noise, site directions and outlier choice (common random numbers, smooth curves).
DATA_KEYS = ("n_sites", "n_per_site", "p", "q", "outlier_frac", "scenario")
# Nominal level of every interval in the study.
LEVEL = 0.95
_Z = 1.959963984540054  # normal quantile of (1 + LEVEL) / 2

FULL_DESIGN = {
    "n_sites": [10, 20, 30],
    "n_per_site": [200, 500, "unequal"],
    "eta": [round(0.1 * i, 1) for i in range(11)],
    "outlier_frac": [0.0, 0.2],
    "scenario": ["S1", "S2", "S3"],
    "p": [1, 5],
}
QUICK_DESIGN = {
    "n_sites": [10],
    "n_per_site": [200],
    "eta": [0.0, 0.25, 0.5, 1.0],
    "outlier_frac": [0.0, 0.2],
    "scenario": ["S1", "S2"],
    "p": [1],
}


# ----------------------------------------------------------------------------- one replication

def make_learner(name: str, seed: int) -> Any:
    """A scikit-learn regressor for the nuisance functions: ``"linear"`` (ordinary least
    squares), ``"lasso"`` (LassoCV, 3 folds, 20 penalties) or ``"forest"`` (a random forest of
    50 trees with leaves of at least 5 rows, half the covariates tried per split)."""
    if name == "linear":
        from sklearn.linear_model import LinearRegression

        return LinearRegression()
    if name == "lasso":
        from sklearn.linear_model import LassoCV

        return LassoCV(cv=3, alphas=20, random_state=seed)
    if name == "forest":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=50, min_samples_leaf=5, max_features=0.5,
                                     random_state=seed)
    raise ValueError(f"learner: must be one of {LEARNERS}, got {name!r}")


def _child(seed: np.random.SeedSequence, *key: int) -> np.random.SeedSequence:
    # Children by fixed keys (not spawn(), which would depend on how often it was called).
    return np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, *key),
                                  pool_size=seed.pool_size)


def fit_sites(sim, learner: str, seed: np.random.SeedSequence, n_folds: int = 5) -> list[SiteDML]:
    """Fit SiteDML (PLR) on each simulated site, with its own fold and learner seeds."""
    y = sim.data["y"].to_numpy(dtype=np.float64)
    d = sim.data[sim.d_cols].to_numpy(dtype=np.float64)
    x = sim.data[sim.x_cols].to_numpy(dtype=np.float64)
    bounds = np.cumsum(sim.n_per_site)[:-1]
    fits = []
    for k, (yk, dk, xk) in enumerate(zip(np.split(y, bounds), np.split(d, bounds),
                                         np.split(x, bounds))):
        site_seed = _child(seed, k)
        l_seed, m_seed = (int(s) for s in site_seed.generate_state(2))
        est = SiteDML("plr", ml_l=make_learner(learner, l_seed), ml_m=make_learner(learner, m_seed),
                      n_folds=n_folds, site=sim.site_names[k], random_state=site_seed)
        fits.append(est.fit(y=yk, d=dk, x=xk))
    return fits


def _metrics(est: np.ndarray, lower: np.ndarray, upper: np.ndarray, theta: np.ndarray,
             inlier: np.ndarray) -> dict[str, float]:
    """Squared errors (mean and max over sites) and interval coverage and width."""
    err = np.sum((est - theta) ** 2, axis=1)
    covered = (lower <= theta) & (theta <= upper)
    return {
        "err_mean": float(err.mean()), "err_max": float(err.max()),
        "err_mean_inlier": float(err[inlier].mean()), "err_max_inlier": float(err[inlier].max()),
        "coverage": float(covered.mean()), "width": float((upper - lower).mean()),
        # Counts rather than shares, so that coverage can be pooled over replications.
        "outlier_covered": int(covered[~inlier].sum()),
        "outlier_intervals": int(covered[~inlier].size),
    }


def _fusion_rows(summaries, theta: np.ndarray, inlier: np.ndarray, weight: str, n_boot: int,
                 rng: np.random.Generator, method: str = "fusion") -> tuple[dict, LateFusion]:
    lam = "cv" if method == "fusion" else None
    lf = LateFusion(method=method, lam=lam, weight=weight, inference="bootstrap", n_boot=n_boot,
                    level=LEVEL, random_state=rng).fit(summaries)
    inf = lf.inference_
    row = _metrics(lf.theta_, inf.lower, inf.upper, theta, inlier)
    covered = (inf.lower <= theta) & (theta <= inf.upper)
    unfused = ~lf.fused_mask_
    row.update({
        "n_fused": int(lf.fused_mask_.sum()),
        "lambda_ratio": float(lf.lambda_ / lf.lambda_max_) if lf.lambda_max_ > 0 else np.nan,
        "unfused_covered": int(covered[unfused].sum()),
        "unfused_intervals": int(covered[unfused].size),
        "fused_covered": int(covered[~unfused].sum()),
        "fused_intervals": int(covered[~unfused].size),
    })
    return row, lf


def replication(config: dict, seed: np.random.SeedSequence) -> list[dict]:
    """One replication of the study: simulate, fit every site, fuse, score every method.

    Parameters
    ----------
    config : dict
        ``n_sites``, ``n_per_site``, ``p``, ``q``, ``eta``, ``outlier_frac``, ``scenario``,
        ``learner`` and ``n_boot`` (bootstrap draws of late fusion's intervals); optional
        ``methods``, a comma-separated subset of :data:`METHODS`.
    seed : numpy.random.SeedSequence
        Source of all randomness (data, folds, learners, bootstrap).

    Returns
    -------
    list of dict
        One row per method (see the module docstring for the metrics).
    """
    methods = config.get("methods", ",".join(METHODS)).split(",")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"methods: unknown method(s) {unknown}; choose from {METHODS}")
    sim = make_late_fusion_sites(
        n_sites=config["n_sites"], n_per_site=config["n_per_site"], p=config["p"],
        q=config["q"], eta=config["eta"], outlier_frac=config["outlier_frac"],
        scenario=config["scenario"], model="plr", random_state=_child(seed, 0))
    theta, inlier = sim.theta, ~sim.is_outlier
    fits = fit_sites(sim, config["learner"], _child(seed, 1))
    summaries = [f.summary_ for f in fits]
    rows = []

    if "individual" in methods:
        est = np.stack([f.coef_ for f in fits])
        se = np.stack([f.se_ for f in fits])
        rows.append({"method": "individual", **_metrics(est, est - _Z * se, est + _Z * se, theta,
                                                         inlier)})
    if "pooled" in methods:
        # Fixed-effect pool with the precision weights late fusion uses (its lambda_max end).
        A = np.stack([s.n * s.weight_matrix("precision") for s in summaries])
        info = A.sum(axis=0)
        center = np.linalg.solve(info, np.einsum("kij,kj->i", A, np.stack([s.theta for s in summaries])))
        se = np.sqrt(np.diag(np.linalg.inv(info)))
        est = np.broadcast_to(center, theta.shape)
        rows.append({"method": "pooled", **_metrics(est, est - _Z * se, est + _Z * se, theta,
                                                     inlier)})
    for method, weight, key, estimator in (("late_fusion", "precision", 2, "fusion"),
                                           ("late_fusion_hessian", "hessian", 3, "fusion"),
                                           ("robust_eb", "precision", 4, "robust_eb")):
        if method in methods:
            row, _ = _fusion_rows(summaries, theta, inlier, weight, int(config["n_boot"]),
                                  np.random.default_rng(_child(seed, key)), estimator)
            rows.append({"method": method, **row})
    if "oracle" in methods:
        orc = sim.oracle_estimates()
        est = orc["estimate"].to_numpy().reshape(theta.shape)
        se = orc["std_err"].to_numpy().reshape(theta.shape)
        rows.append({"method": "oracle", **_metrics(est, est - _Z * se, est + _Z * se, theta,
                                                     inlier)})
    return rows


# ----------------------------------------------------------------------------- tables and plots

def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Monte-Carlo means (and standard errors) per design and method, one row per pair.

    Coverage on unfused (fused) sites and on outlying sites is pooled over replications: covered
    intervals over intervals, with a binomial standard error.
    """
    config_cols = [c for c in results.attrs.get("config_columns", []) if c in results.columns]
    by = [*config_cols, "method"]
    metrics = ["err_mean", "err_max", "err_mean_inlier", "err_max_inlier", "coverage", "width",
               "n_fused", "lambda_ratio"]
    metrics = [m for m in metrics if m in results.columns]
    wide = summarize_study(results, by=by, metrics=metrics, wide=True)
    out = pd.DataFrame(index=wide.index)
    for m in metrics:
        out[m] = wide[(m, "mean")]
        out[f"{m}_mcse"] = wide[(m, "mcse")]
    out = out.reset_index()
    for part in ("unfused", "fused", "outlier"):
        if f"{part}_intervals" not in results.columns:
            continue
        sums = results.groupby(by, sort=False, dropna=False)[
            [f"{part}_covered", f"{part}_intervals"]].sum(min_count=1).reset_index()
        with np.errstate(invalid="ignore", divide="ignore"):
            share = sums[f"{part}_covered"] / sums[f"{part}_intervals"]
            sums[f"coverage_{part}"] = share
            sums[f"coverage_{part}_mcse"] = np.sqrt(share * (1 - share) / sums[f"{part}_intervals"])
        sums = sums.rename(columns={f"{part}_intervals": f"n_{part}_intervals"}).drop(
            columns=f"{part}_covered")
        out = out.merge(sums, on=by, how="left")
    out.attrs["design_columns"] = [c for c in config_cols if c != "eta"]
    return out


def _design_label(key: Sequence[Any], cols: Sequence[str]) -> str:
    short = {"n_sites": "K", "n_per_site": "n", "outlier_frac": "out", "scenario": "",
             "learner": "", "p": "p", "q": "q", "n_boot": "B"}
    return "_".join(f"{short.get(c, c)}{v}" for c, v in zip(cols, key))


def plot_designs(summary: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One figure per design: inlier error (mean, max over sites) and coverage against eta."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [c for c in summary.attrs.get("design_columns", []) if summary[c].nunique() > 0]
    varying = [c for c in cols if summary[c].nunique() > 1] or cols[:1]
    # One color per method in every panel and figure.
    colors = {m: f"C{i}" for i, m in enumerate(METHODS)}
    paths = []
    for key, part in summary.groupby(cols, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        fig, axes = plt.subplots(1, 3, figsize=(14, 4))
        for method, mpart in part.groupby("method", sort=False):
            mpart = mpart.sort_values("eta")
            for ax, metric in zip(axes[:2], ("err_mean_inlier", "err_max_inlier")):
                ax.errorbar(mpart["eta"], mpart[metric], yerr=mpart[f"{metric}_mcse"],
                            marker="o", ms=3, capsize=2, label=method, color=colors[method])
            axes[2].plot(mpart["eta"], mpart["coverage"], marker="o", ms=3, label=method,
                         color=colors[method])
            if method == "late_fusion" and "coverage_unfused" in mpart:
                axes[2].plot(mpart["eta"], mpart["coverage_unfused"], marker="x", ls="--",
                             color=colors[method], label="late_fusion, unfused sites")
        axes[0].set_title("mean over non-outlying sites of squared error")
        axes[1].set_title("max over non-outlying sites of squared error")
        axes[2].set_title(f"coverage of {LEVEL:.0%} intervals (all sites)")
        axes[2].axhline(LEVEL, color="grey", lw=0.8)
        axes[2].set_ylim(0, 1.02)
        for ax in axes:
            ax.set_xlabel("eta (heterogeneity)")
        axes[0].set_yscale("log")
        axes[1].set_yscale("log")
        axes[2].legend(fontsize=7)
        label = _design_label([key[cols.index(c)] for c in varying], varying) or "design"
        fig.suptitle(", ".join(f"{c}={v}" for c, v in zip(cols, key)), fontsize=9)
        fig.tight_layout()
        path = out_dir / f"error_{label}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- command line

def build_configs(args: argparse.Namespace) -> list[dict]:
    """The design grid from the command-line axes."""
    base = QUICK_DESIGN if args.quick else FULL_DESIGN
    axes = {name: getattr(args, name) or base[name] for name in base}
    axes["n_per_site"] = [v if v == "unequal" else int(v) for v in axes["n_per_site"]]
    axes.update(q=[args.q], learner=[args.learner], n_boot=[args.n_boot])
    return config_grid(**axes)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Late-fusion simulation study: individual DML vs pooled vs late fusion "
                    "vs oracle, error and coverage against heterogeneity eta.",
        epilog="Every axis option takes one or more values and replaces that axis of the design "
               "(the full design by default, the reduced one with --quick).")
    parser.add_argument("--out-dir", type=Path, required=True,
                        help="folder for results.csv, summary.csv, figures and the checkpoint")
    parser.add_argument("--quick", action="store_true",
                        help="reduced design (K=10, n=200, 4 eta values, S1/S2, p=1), 20 "
                             "replications, linear learners")
    parser.add_argument("--reps", type=int, default=None,
                        help="replications per design point (default 100; 20 with --quick)")
    parser.add_argument("--n-sites", dest="n_sites", type=int, nargs="+", help="K values")
    parser.add_argument("--n-per-site", dest="n_per_site", nargs="+",
                        help="rows per site: integers and/or 'unequal' (uniform 100..500)")
    parser.add_argument("--eta", type=float, nargs="+", help="heterogeneity levels")
    parser.add_argument("--outlier-frac", dest="outlier_frac", type=float, nargs="+",
                        help="fractions of outlying sites")
    parser.add_argument("--scenario", nargs="+", choices=["S1", "S2", "S3"],
                        help="nuisance scenarios: identical, mildly different, unrelated")
    parser.add_argument("--p", type=int, nargs="+", help="dimensions of theta")
    parser.add_argument("--q", type=int, default=10, help="number of covariates (default 10)")
    parser.add_argument("--learner", choices=LEARNERS, default=None,
                        help="nuisance learner (default forest; linear with --quick)")
    parser.add_argument("--n-boot", dest="n_boot", type=int, default=500,
                        help="bootstrap draws for late fusion's intervals (default 500)")
    parser.add_argument("--n-jobs", dest="n_jobs", type=int, default=-1,
                        help="parallel workers (default -1: all cores)")
    parser.add_argument("--seed", type=int, default=20250710, help="root seed of the study")
    add_cluster_arguments(parser)
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="hide the progress bar")
    parser.add_argument("--panel", action="store_true",
                        help="run the summary-level panel instead (homogeneous, outlying, normal "
                             "and clustered sites; every method; default 400 replications)")
    parser.add_argument("--designs", nargs="+", default=None,
                        help="with --panel: the designs to run (default all, held-out included)")
    parser.add_argument("--rows", choices=["oracle", "forest"], default=None,
                        help="with --panel: real DML on simulated rows of each design, with oracle "
                             "or random-forest nuisances, instead of drawn site estimates")
    parser.add_argument("--tradeoffs", action="store_true",
                        help="with --panel: only the two trade-off tables (a homogeneity pretest "
                             "before robust EB, and other outlier scales), tradeoffs_*.csv")
    parser.add_argument("--oracle", action="store_true",
                        help="with --panel: only the oracle table (Bayes rules that know the "
                             "prior against the default), oracle.csv")
    parser.add_argument("--ebci", action="store_true",
                        help="with --panel: only the coverage of the default's intervals against "
                             "robust empirical-Bayes critical values, ebci.csv")
    parser.add_argument("--outlying-group", dest="outlying_group", choices=["t", "nonlocal"],
                        default=None,
                        help="with --panel: robust EB's outlying group (default: its default); "
                             "the data sets are those of the default run")
    parser.add_argument("--spike", action="store_true",
                        help="with --panel: robust EB with its point-mass group (sites exactly "
                             "at the center); the data sets are those of the default run")
    parser.add_argument("--model-average", dest="model_average", action="store_true",
                        help="with --panel: robust EB averaged with pooling by the posterior "
                             "probability that all sites are equal; the data sets are those of "
                             "the default run")
    parser.add_argument("--gmodel", action="store_true",
                        help="with --panel: add gmodel_eb (nonparametric empirical Bayes) next "
                             "to the other methods; the data sets and their numbers are those "
                             "of the default run")
    parser.add_argument("--double-bootstrap", dest="double_bootstrap", action="store_true",
                        help="with --panel: add robust_eb_double, the default's estimates with "
                             "interval levels calibrated by a double bootstrap; the data sets "
                             "and the other methods' numbers are those of the default run")
    parser.add_argument("--bootstrap-sites", dest="bootstrap_sites", action="store_true",
                        help="with --panel: add robust_eb_bootstrap, the default's estimates and "
                             "center interval with the sites' bootstrap intervals (the previous "
                             "default); the data sets and the other methods' numbers are those of "
                             "the default run")
    parser.add_argument("--chunk", type=int, default=50,
                        help="with --panel: replications per task, evaluated batched (default 50; "
                             "--reps is rounded up to a multiple)")
    parser.add_argument("--no-fusion-cv", dest="fusion_cv", action="store_false",
                        help="with --rows: leave out the penalized fusion with cross-validated "
                             "lambda (one fit per replication, the slowest method)")
    args = parser.parse_args(argv)
    if args.reps is None:
        args.reps = 400 if args.panel else 20 if args.quick else 100
    if args.learner is None:
        args.learner = "linear" if args.quick else "forest"
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def run_tradeoffs(out_dir: Path) -> int:
    """The trade-off tables of :mod:`hetmtl.studies.late_fusion_tradeoffs` (1000 replications)."""
    from hetmtl.studies import late_fusion_tradeoffs as tradeoffs

    for name, table in (("pretest", tradeoffs.pretest_table()), ("slab", tradeoffs.slab_table())):
        table.round(3).to_csv(out_dir / f"tradeoffs_{name}.csv")
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            print(table.round(2).to_string())
    return 0


def _write_table(table: pd.DataFrame, path: Path) -> int:
    table.round(3).to_csv(path)
    with pd.option_context("display.width", 200, "display.max_rows", 400):
        print(table.round(3).to_string())
    return 0


def run_oracle(out_dir: Path, n_reps: int) -> int:
    """The oracle table of :mod:`hetmtl.studies.late_fusion_oracle`."""
    from hetmtl.studies.late_fusion_oracle import oracle_table

    return _write_table(oracle_table(n_reps=n_reps), out_dir / "oracle.csv")


def run_ebci(out_dir: Path, n_reps: int, designs: Sequence[str] | None, n_boot: int) -> int:
    """The coverage table of :mod:`hetmtl.studies.late_fusion_ebci`."""
    from hetmtl.studies.late_fusion_ebci import ebci_table

    return _write_table(ebci_table(n_reps=n_reps, designs=designs, n_boot=n_boot),
                        out_dir / "ebci.csv")


def run_panel(args: argparse.Namespace) -> int:
    """The summary-level panel (site estimates drawn from their sampling distribution)."""
    from hetmtl.studies import late_fusion_panel as panel
    from hetmtl.studies import late_fusion_rows as rows

    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.tradeoffs:
        return run_tradeoffs(out_dir)
    if args.oracle:
        return run_oracle(out_dir, args.reps)
    if args.ebci:
        return run_ebci(out_dir, args.reps, args.designs, args.n_boot)
    names = args.designs or list(panel.DESIGNS)
    unknown = sorted(set(names) - set(panel.DESIGNS))
    if unknown:
        raise SystemExit(f"--designs: unknown design(s) {unknown}; choose from {list(panel.DESIGNS)}")
    if args.chunk < 1:
        raise SystemExit("--chunk: must be at least 1")
    axes = {"design": names, "n_boot": [args.n_boot], "chunk": [args.chunk]}
    fn = panel.panel_chunk
    seed_keys = None
    variants = {"outlying_group": args.outlying_group, "spike": args.spike or None,
                "model_average": args.model_average or None, "gmodel": args.gmodel or None,
                "double_bootstrap": args.double_bootstrap or None,
                "bootstrap_sites": args.bootstrap_sites or None}
    if args.rows:
        axes.update(nuisance=[args.rows], fusion_cv=[bool(args.fusion_cv)])
        fn = rows.row_chunk
    for key, value in variants.items():
        if value is None:
            continue
        if args.rows and key != "bootstrap_sites":
            raise SystemExit(f"--{key.replace('_', '-')}: applies to the summary-level panel only")
        # Same data sets as the run without the option (the seeds hash the other keys only).
        seed_keys = seed_keys or list(axes)
        axes[key] = [value]
    configs = config_grid(**axes)
    n_tasks = -(-args.reps // args.chunk)
    level = f"row-level ({args.rows} nuisances)" if args.rows else "summary-level"
    print(f"{level} panel: {len(configs)} designs x {n_tasks * args.chunk} replications")
    results = run_study(fn, configs, n_tasks, seed=args.seed, n_jobs=args.n_jobs, seed_keys=seed_keys,
                        checkpoint=out_dir / "checkpoint", progress=args.progress,
                        scheduler_address=args.scheduler_address)
    # One replication = one (task, position in the task's batch).
    results["rep"] = results["rep"] * args.chunk + results["sub"]
    results.to_csv(out_dir / "results.csv.gz", index=False)
    tables = panel.write_panel_outputs(results, out_dir)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(tables["ratios"].round(3).to_string())
    print(f"wrote tables (CSV, tables.md) and figures to {out_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.panel:
        return run_panel(args)
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    configs = build_configs(args)
    print(f"{len(configs)} design points x {args.reps} replications, learner {args.learner}")
    results = run_study(replication, configs, args.reps, seed=args.seed, n_jobs=args.n_jobs,
                        checkpoint=out_dir / "checkpoint", progress=args.progress,
                        seed_keys=list(DATA_KEYS), **cluster_options(args))
    results.to_csv(out_dir / "results.csv", index=False)
    summary = summarize(results)
    summary.to_csv(out_dir / "summary.csv", index=False)
    figures = plot_designs(summary, out_dir)
    show = ["eta", "outlier_frac", "scenario", "method", "err_mean_inlier", "err_max_inlier",
            "coverage", "coverage_unfused"]
    with pd.option_context("display.width", 160, "display.max_rows", 400):
        print(summary[[c for c in show if c in summary.columns]].to_string(index=False,
                                                                           float_format="%.4f"))
    print(f"wrote {out_dir / 'results.csv'}, {out_dir / 'summary.csv'} and {len(figures)} figure(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
