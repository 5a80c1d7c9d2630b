"""Accuracy cost of differentially private site summaries in late fusion.

Each replication simulates sites (scenario S1, PLR, two covariates, eta = 0.3,
:func:`hetmtl.simulate.make_late_fusion_sites`), fits every site's DML (random forests, 5 folds)
and releases its summary exactly and under privacy budgets epsilon (delta = 1e-6, residualized
treatment clipped to norm C_d, residualized outcome to C_y; :mod:`hetmtl.fusion.summary_privacy`).
The center fuses each set of summaries (robust empirical Bayes, intervals from 200 parametric
bootstrap draws). Reported per site size and
epsilon: the mean squared error and the coverage of the nominal 95% interval of the released site
estimates (the released covariance includes the noise), and the same for the late-fusion
estimates; "released" is the share of sites whose private release was not refused (a site whose
design the noise would swamp sends nothing, and the center fuses the others).

    python docs/studies/disclosure/dp_summaries.py --n-rep 12 --sizes 500 2000 --out docs/studies/disclosure
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from hetmtl._util.validation import ArgumentError
from hetmtl.fusion import LateFusion, SiteDML, SummaryPrivacy
from hetmtl.simulate import make_late_fusion_sites

EPSILONS = (None, 20.0, 5.0, 1.0)   # None: the exact summary
REGRESSOR_BOUND = 4.0                # C_d: the treatment residual has sd about 1 in S1
OUTCOME_BOUND = 6.0                  # C_y: the outcome residual has sd about 1.5 in S1
Z = norm.ppf(0.975)


def site_fits(seed: int, n_per_site: int, n_sites: int, n_folds: int):
    """The simulated design and each site's DML fit (random forests of 50 trees)."""
    sim = make_late_fusion_sites(n_sites=n_sites, n_per_site=n_per_site, p=1, q=2, eta=0.3, scenario="S1",
                                 model="plr", random_state=np.random.SeedSequence(seed).spawn(1)[0])
    by_site = dict(tuple(sim.data.groupby("site")))
    return sim, [SiteDML("plr", ml_l="rf", ml_m="rf", n_folds=n_folds, site=name,
                         learner_args={"n_estimators": 50},
                         random_state=np.random.SeedSequence([seed, k])).fit(
                             by_site[name], y="y", d="d", x=list(sim.x_cols))
                 for k, name in enumerate(sim.site_names)]


def replication(seed: int, n_per_site: int, n_sites: int = 10, n_folds: int = 5) -> list[dict]:
    sim, fits = site_fits(seed, n_per_site, n_sites, n_folds)
    rows = []
    for eps in EPSILONS:
        released = {}
        for k, f in enumerate(fits):
            if eps is None:
                released[k] = f.summary_
                continue
            try:
                released[k] = f.private_summary(SummaryPrivacy(
                    eps, REGRESSOR_BOUND, OUTCOME_BOUND,
                    random_state=np.random.SeedSequence([seed, k, int(eps * 10)])))
            except ArgumentError:   # the noise would swamp this site's design: it sends nothing
                rows.append({"n": n_per_site, "epsilon": eps, "released": False})
        if len(released) < 2:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # no fold summaries under privacy: no CV warning noise
            late = LateFusion(n_boot=200, random_state=seed).fit(list(released.values()))
        table = late.summary()
        for i, (k, s) in enumerate(released.items()):
            truth = float(sim.theta[k, 0])
            err = float(s.theta[0]) - truth
            lo, hi = table.iloc[i]["fused ci lower"], table.iloc[i]["fused ci upper"]
            rows.append({"n": n_per_site, "epsilon": "exact" if eps is None else eps, "released": True,
                         "err_site": err**2, "cover_site": abs(err) <= Z * s.se[0],
                         "se_site": float(s.se[0]),
                         "err_late": (float(late.theta_[i, 0]) - truth) ** 2,
                         "cover_late": bool(lo <= truth <= hi)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-rep", type=int, default=30)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--out", type=Path, default=Path("docs/studies/disclosure"))
    args = parser.parse_args()
    rows = [r for n in args.sizes for s in range(args.n_rep) for r in replication(4048 + s, n)]
    df = pd.DataFrame(rows)
    df["epsilon"] = df["epsilon"].astype(str)

    def mc_se(v):
        return v.std(ddof=1) / np.sqrt(len(v))

    table = df.groupby(["n", "epsilon"], sort=False).agg(
        released=("released", "mean"), mse_site=("err_site", "mean"), mse_site_se=("err_site", mc_se),
        coverage_site=("cover_site", "mean"), mean_se_site=("se_site", "mean"),
        mse_late=("err_late", "mean"), mse_late_se=("err_late", mc_se),
        coverage_late=("cover_late", "mean")).reset_index()
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "dp_summaries.csv", index=False, float_format="%.4g")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
