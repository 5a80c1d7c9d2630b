"""Benchmark of one simulation replication: hetmtl's SiteDML against DoubleML, then late fusion.

Run from the repository root::

    python benchmarks/bench_replication.py            # best of 7 (OLS) or 3 repeats
    python benchmarks/bench_replication.py --quick    # best of 3 (OLS) or 1: a rough check
    python benchmarks/bench_replication.py --learner ols   # one learner family only

One replication of the late-fusion simulation design (K = 10 sites, n_k = 500 rows, q = 10
covariates, PLR, scenario S1, eta = 0.1) is estimated twice with the same scikit-learn learners
and 5 cross-fitting folds per site:

* **hetmtl**: ``SiteDML`` on every site, then ``LateFusion(lam="cv")`` on the site summaries;
* **DoubleML**: ``DoubleMLPLR`` on every site, its score elements turned into the same site
  summaries (estimate, Jacobian, score covariance, per-fold summaries), then the same
  ``LateFusion``.

Each side draws its own sample splits, as a user of that package would; the fusion step is the
same code on both sides, so the ratio measures the per-site DML. Before timing, both packages are
run on DoubleML's splits and must give the same site estimates (relative difference below
1e-8), so that the two timed pipelines compute the same thing.

Learners (the same estimator objects are cloned on both sides): ordinary least squares (the
cheapest; shows fixed overheads), ``LassoCV()`` (scikit-learn defaults) and a random forest of
50 trees with leaves of at least 5 rows. Goal: hetmtl at least 2x faster than DoubleML.

Both packages make the same 100 learner fits per replication (2 nuisances x 5 folds x 10
sites); what hetmtl can save is the work around them. With LassoCV or forests the fits
themselves take nearly all the time, so no implementation of the same estimator can be much
faster there; the table shows how much of each replication is overhead.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import warnings

import numpy as np

from _timing import format_seconds, format_table, measure

from hetmtl.fusion.late_fusion import LateFusion
from hetmtl.fusion.site_dml import SiteDML
from hetmtl.fusion.summary import FoldSummary, SiteSummary
from hetmtl.simulate import make_late_fusion_sites

N_SITES, N_PER_SITE, N_FOLDS = 10, 500, 5
GOAL = 2.0


def make_learners(name: str):
    """The (ml_l, ml_m) pair of one learner family; fixed seeds so both sides fit alike."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LassoCV, LinearRegression

    if name == "ols":
        return LinearRegression(), LinearRegression()
    if name == "lasso":
        return LassoCV(), LassoCV()
    if name == "forest":
        return (RandomForestRegressor(n_estimators=50, min_samples_leaf=5, random_state=0),
                RandomForestRegressor(n_estimators=50, min_samples_leaf=5, random_state=1))
    raise ValueError(f"learner: unknown learner family {name!r}")


LEARNERS = ("ols", "lasso", "forest")


def site_arrays(sim):
    """(y, d, x) arrays of every site, and each site's rows as a DataFrame for DoubleML."""
    y = sim.data["y"].to_numpy(dtype=np.float64)
    d = sim.data[sim.d_cols].to_numpy(dtype=np.float64)
    x = sim.data[sim.x_cols].to_numpy(dtype=np.float64)
    bounds = np.cumsum(sim.n_per_site)[:-1]
    arrays = list(zip(np.split(y, bounds), np.split(d, bounds), np.split(x, bounds)))
    frames = [sub.drop(columns="site").reset_index(drop=True)
              for _, sub in sim.data.groupby("site", sort=True)]
    return arrays, frames


def fuse(summaries) -> LateFusion:
    return LateFusion(lam="cv", n_boot=1000, random_state=0).fit(summaries)


def hetmtl_site(yk, dk, xk, name, learners, k, folds=None) -> SiteSummary:
    fit = SiteDML("plr", ml_l=learners[0], ml_m=learners[1], n_folds=N_FOLDS, site=name,
                  random_state=k).fit(y=yk, d=dk, x=xk, folds=folds)
    return fit.summary_


def hetmtl_replication(sites, names, learners) -> LateFusion:
    return fuse([hetmtl_site(yk, dk, xk, names[k], learners, k)
                 for k, (yk, dk, xk) in enumerate(sites)])


def summary_from_doubleml(obj, name: str) -> SiteSummary:
    """The site summary of a fitted single-treatment DoubleMLPLR (first repetition).

    With the linear score psi = psi_a theta + psi_b: J = mean(psi_a), Omega = mean(psi^2), and
    each fold's estimate solves its own mean score.
    """
    psi_a = obj.psi_elements["psi_a"][:, 0, 0]
    psi_b = obj.psi_elements["psi_b"][:, 0, 0]

    def moments(rows):
        a, b = psi_a[rows], psi_b[rows]
        theta = -b.sum() / a.sum()
        return theta, a.mean(), np.mean((a * theta + b) ** 2)

    theta, J, Omega = moments(slice(None))
    folds = []
    for _, test in obj.smpls[0]:
        th, Jf, Of = moments(test)
        folds.append(FoldSummary(int(test.size), np.array([th]), np.array([[Jf]]),
                                 np.array([[Of]])))
    return SiteSummary(theta=np.array([theta]), J=np.array([[J]]), Omega=np.array([[Omega]]),
                       n=psi_a.size, site=name, model="plr", coef_names=["d"], folds=tuple(folds))


def doubleml_site(frame, name, learners):
    import doubleml as dml
    from sklearn.base import clone

    # From a DataFrame: DoubleMLData.from_arrays is broken on scikit-learn >= 1.8 as well.
    data = dml.DoubleMLData(frame, "y", "d")
    obj = dml.DoubleMLPLR(data, clone(learners[0]), clone(learners[1]), n_folds=N_FOLDS)
    obj.fit()
    return obj, summary_from_doubleml(obj, name)


def doubleml_replication(frames, names, learners) -> LateFusion:
    return fuse([doubleml_site(frame, names[k], learners)[1] for k, frame in enumerate(frames)])


def learner_fits_only(sites, learners) -> None:
    """The 100 learner fits and predictions of a replication and nothing else: the floor that
    any implementation of the same estimator pays."""
    import sklearn
    from sklearn.base import clone

    rng = np.random.default_rng(0)
    # Inputs are known to be finite; scikit-learn's cheapest legal way to call its estimators.
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        for yk, dk, xk in sites:
            for test in np.array_split(rng.permutation(yk.size), N_FOLDS):
                train = np.setdiff1d(np.arange(yk.size), test)
                for learner, target in zip(learners, (yk, dk[:, 0])):
                    clone(learner).fit(xk[train], target[train]).predict(xk[test])


def check_agreement(sites, frames, names, learners, n_check: int = 2) -> float:
    """Largest relative difference of the site estimates when hetmtl uses DoubleML's splits
    (on the first ``n_check`` sites)."""
    worst = 0.0
    for k, ((yk, dk, xk), frame) in enumerate(zip(sites[:n_check], frames[:n_check])):
        obj, ref = doubleml_site(frame, names[k], learners)
        ours = hetmtl_site(yk, dk, xk, names[k], learners, k, folds=obj.smpls)
        worst = max(worst, float(np.max(np.abs(ours.theta - ref.theta) / np.abs(ref.theta))))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repeat (a rough check)")
    parser.add_argument("--learner", nargs="+", choices=LEARNERS, default=list(LEARNERS),
                        help="learner families to benchmark (default: all)")
    args = parser.parse_args(argv)

    import doubleml
    import sklearn

    sim = make_late_fusion_sites(n_sites=N_SITES, n_per_site=N_PER_SITE, q=10, eta=0.1,
                                 random_state=0)
    (sites, frames), names = site_arrays(sim), list(sim.site_names)

    print("One late-fusion replication: per-site DML + LateFusion(lam='cv')")
    print(f"K={N_SITES} sites x n={N_PER_SITE} rows, q=10, PLR, {N_FOLDS} folds; python "
          f"{platform.python_version()}, scikit-learn {sklearn.__version__}, DoubleML "
          f"{doubleml.__version__}, {os.cpu_count()} CPU(s); best of "
          f"{'3 (ols) / 1' if args.quick else '7 (ols) / 3'} repeats")
    rows = []
    for name in args.learner:
        learners = make_learners(name)
        # Cheap learners get more repeats: their timings are short and noisy.
        repeat = (3 if args.quick else 7) if name == "ols" else (1 if args.quick else 3)
        with warnings.catch_warnings():
            # LassoCV may not converge on some folds at scikit-learn's default tolerance; that is
            # the same on both sides and not what is measured here.
            warnings.simplefilter("ignore", category=UserWarning)
            from sklearn.exceptions import ConvergenceWarning
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            # The agreement check also warms both packages up, so the timings need no warm-up.
            agree = check_agreement(sites, frames, names, learners)
            h = measure(lambda: hetmtl_replication(sites, names, learners), repeat=repeat,
                        warmup=0)
            d = measure(lambda: doubleml_replication(frames, names, learners), repeat=repeat,
                        warmup=0)
            lf_only = measure(lambda: fuse(h.result.summaries_), repeat=3)
            floor = measure(lambda: learner_fits_only(sites, learners), repeat=repeat, warmup=0)
        center_gap = float(np.abs(h.result.center_ - d.result.center_).max())
        ceiling = d.best / (floor.best + lf_only.best)
        rows.append([name, format_seconds(h.best), format_seconds(d.best),
                     format_seconds(lf_only.best), format_seconds(floor.best),
                     f"{d.best / h.best:.2f}x", f"{ceiling:.2f}x",
                     f"{agree:.1e}", f"{center_gap:.1e}",
                     "met" if d.best / h.best >= GOAL else "NOT met"])
    print(format_table(["learner", "hetmtl", "DoubleML", "(fusion alone)", "(learner fits alone)",
                        "DoubleML / hetmtl", "ceiling",
                        "same-split rel. diff", "|center diff|", f"goal >= {GOAL:.0f}x"], rows))
    print("   hetmtl / DoubleML = 10 per-site DML fits plus LateFusion (CV over 50 lambdas, 1000\n"
          "   bootstrap draws); (fusion alone) is that shared LateFusion step; (learner fits alone)\n"
          "   = the 100 bare fit/predict calls; ceiling = DoubleML / (learner fits + fusion), the\n"
          "   ratio an implementation with no overhead at all would reach. same-split rel. diff\n"
          "   = largest relative difference of the site estimates with DoubleML's splits given to\n"
          "   SiteDML; |center diff| compares the fused centers of the two timed runs, whose splits\n"
          "   differ (so it reflects sampling, not a discrepancy).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
