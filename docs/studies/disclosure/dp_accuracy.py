"""Accuracy cost of differentially private grid sums in nuisance fusion (and late fusion after it).

Each replication simulates sites with shared nuisance functions (scenario S1, PLR, one covariate,
:func:`hetmtl.simulate.make_late_fusion_sites`), computes every site's grid summary exactly and
under privacy budgets epsilon (delta = 1e-6, targets clipped to [-B, B]), fuses the nuisances
(bandwidth and lambda by cross-validation), fits each site's DML with the fused nuisances and
fuses the site estimates. It reports the share of replications in which some grid point was
released (fusion possible) and, over those, the mean squared error of the treatment regression m, of the
site estimates and of the late-fusion estimates, per epsilon and site size.

    python docs/studies/disclosure/dp_accuracy.py --n-rep 20 --out docs/studies/disclosure
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from hetmtl.fusion import (GridSummary, KernelGrid, LateFusion, NuisanceFusion, SiteDML,
                           common_bandwidths, nuisance_targets, silverman_bandwidth)
from hetmtl.fusion.crossfit import make_folds
from hetmtl.fusion.disclosure import DisclosurePolicy
from hetmtl.fusion.privacy import PrivacyBudget
from hetmtl.simulate import make_late_fusion_sites

EPSILONS = (None, 20.0, 5.0, 1.0)   # None: exact sums
BOUND = 8.0                          # clipping range [-B, B] of y and d


def replication(seed: int, n_per_site: int, n_sites: int = 10, n_folds: int = 5) -> list[dict]:
    root = np.random.SeedSequence(seed)
    sim = make_late_fusion_sites(n_sites=n_sites, n_per_site=n_per_site, p=1, q=1, eta=0.3,
                                 scenario="S1", model="plr", random_state=root.spawn(1)[0])
    sites = []
    for k, name in enumerate(sim.site_names):
        sub = sim.data.loc[sim.data["site"] == name]
        x, y, d = (sub[c].to_numpy(float) for c in (sim.x_cols, "y", "d"))
        folds = make_folds(len(y), n_folds, 1, np.random.SeedSequence([seed, k]))[0]
        sites.append((name, x, y, d, folds))
    lo = min(s[1].min() for s in sites)
    hi = max(s[1].max() for s in sites)
    grid = KernelGrid.from_ranges([[lo, hi]], 25)      # agreed from public knowledge of x's range
    H = common_bandwidths([silverman_bandwidth(s[1]) for s in sites], (0.5, 1.0, 2.0))
    rows = []
    for eps in EPSILONS:
        eps_name = "exact" if eps is None else eps
        budget = None if eps is None else PrivacyBudget(
            eps, 1e-6, bounds={"ml_l": (-BOUND, BOUND), "ml_m": (-BOUND, BOUND)}, random_state=[seed, 7])
        policy = DisclosurePolicy(privacy=budget)
        summaries = [GridSummary.compute(grid, x, nuisance_targets("plr", y, d), folds, H, site=name,
                                         policy=policy) for name, x, y, d, folds in sites]
        try:
            nf = NuisanceFusion(lam="cv").fit(summaries)
        except ValueError:      # the noisy sums released no grid point: no fusion possible
            rows += [{"n": n_per_site, "epsilon": eps_name, "fused": False} for _ in range(n_sites)]
            continue
        ests, errs_m = [], []
        for k, (name, x, y, d, folds) in enumerate(sites):
            preds = nf.result(name).predictions(x, folds)
            true_m = np.asarray(sim.nuisance(k, x)["m"]).reshape(len(y), -1)[:, 0]
            errs_m.append(float(np.mean((preds["ml_m"] - true_m) ** 2)))
            ests.append(SiteDML("plr", n_folds=n_folds, site=name).fit(
                y=y, d=d, x=x, folds=[folds], predictions=preds).summary_)
        late = LateFusion(inference="none").fit(ests)
        for k in range(n_sites):
            truth = float(sim.theta[k, 0])
            rows.append({"n": n_per_site, "epsilon": eps_name, "fused": True,
                         "sigma": 0.0 if eps is None else summaries[k].privacy["sigma"],
                         "err_m": errs_m[k], "err_site": (float(ests[k].theta[0]) - truth) ** 2,
                         "err_late": (float(late.theta_[k, 0]) - truth) ** 2})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-rep", type=int, default=20)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 5000])
    parser.add_argument("--out", type=Path, default=Path("docs/studies/disclosure"))
    args = parser.parse_args()
    rows = [r for n in args.sizes for s in range(args.n_rep) for r in replication(2024 + s, n)]
    df = pd.DataFrame(rows)
    df["epsilon"] = df["epsilon"].astype(str)
    table = df.groupby(["n", "epsilon"], sort=False).agg(
        fused=("fused", "mean"), sigma=("sigma", "mean"), mse_m=("err_m", "mean"), mse_site=("err_site", "mean"),
        se_site=("err_site", lambda v: v.std(ddof=1) / np.sqrt(len(v))),
        mse_late=("err_late", "mean"),
        se_late=("err_late", lambda v: v.std(ddof=1) / np.sqrt(len(v)))).reset_index()
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "dp_accuracy.csv", index=False, float_format="%.4g")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


if __name__ == "__main__":
    main()
