"""Simulation study of nuisance fusion: per-site target error against site size, with fused and
with per-site kernel nuisances, before and after late fusion, in the three nuisance scenarios.

Run from the repository root::

    python scripts/study_nuisance_fusion.py --out results/nuisance_fusion            # 100 reps
    python scripts/study_nuisance_fusion.py --out nf-study --n-rep 10 --model irm     # quick look
    python scripts/study_nuisance_fusion.py --out nf-moderate --sizes moderate        # larger sites

Site sizes: ``small`` (the default) has ten sites of 40 to 200 rows, where a site's own kernel
regression is noisy enough for its error to reach the target; ``moderate`` has eight sites of 80
to 500 rows, where Neyman orthogonality already makes the target insensitive to it.

Writes ``errors.csv`` (one row per replication, scenario, site and method), ``summary.csv``
(mean squared errors with Monte-Carlo standard errors by scenario, method and site size) and
``curves.png`` (error against site size; one panel per scenario). Replications are checkpointed in
``OUT/checkpoint`` (an interrupted run resumes) and run on a dask cluster with
``--scheduler-address``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd

from hetmtl.studies import config_grid, run_study
from hetmtl.studies.cluster_args import add_cluster_arguments, cluster_options
from hetmtl.studies.nuisance_fusion import nuisance_fusion_replication

SIZES = {"small": [40, 50, 60, 70, 80, 90, 100, 120, 150, 200],
         "moderate": [80, 100, 120, 150, 200, 300, 400, 500]}


def replication(config: dict, seed: np.random.SeedSequence) -> list[dict]:
    """One replication of one scenario; the configuration holds every design choice."""
    sizes = SIZES[config["sizes"]]
    out = nuisance_fusion_replication(
        scenario=config["scenario"], model=config["model"], q=config["q"], n_sites=len(sizes),
        n_per_site=sizes, eta=0.3, n_points=25 if config["q"] == 1 else 12,
        penalty=config["penalty"], fit=config["fit"], random_state=seed)
    return out.to_dict("records")


def summarize(errors: pd.DataFrame) -> pd.DataFrame:
    long = errors.melt(id_vars=["scenario", "rep", "site", "n", "method"],
                       value_vars=["err_site", "err_late"], var_name="stage", value_name="sq_error")
    long["stage"] = long["stage"].map({"err_site": "site DML", "err_late": "after late fusion"})
    g = long.groupby(["scenario", "method", "stage", "n"])["sq_error"]
    table = g.agg(["mean", "std", "count"]).reset_index()
    table["mc_se"] = table["std"] / np.sqrt(table["count"])
    return table.drop(columns="std")


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = sorted(table["scenario"].unique())
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 4), squeeze=False)
    styles = {("fused", "site DML"): ("C0", "-"), ("per-site", "site DML"): ("C1", "-"),
              ("fused", "after late fusion"): ("C0", "--"), ("per-site", "after late fusion"): ("C1", "--")}
    for ax, sc in zip(axes[0], scenarios):
        for (method, stage), (color, ls) in styles.items():
            sub = table[(table.scenario == sc) & (table.method == method) & (table.stage == stage)]
            ax.errorbar(sub["n"], sub["mean"], yerr=sub["mc_se"], color=color, ls=ls, marker="o",
                        ms=3, capsize=2, label=f"{method} nuisances, {stage}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("site size n_k")
        ax.set_title(f"scenario {sc}")
    axes[0][0].set_ylabel("mean squared error of theta_k")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n-rep", type=int, default=100)
    parser.add_argument("--model", choices=("irm", "plr"), default="plr")
    parser.add_argument("--sizes", choices=tuple(SIZES), default="small", help="site sizes")
    parser.add_argument("--q", type=int, default=1, help="number of covariates (1 or 2)")
    parser.add_argument("--penalty", choices=("function", "pointwise"), default="function")
    parser.add_argument("--fit", choices=("constant", "linear"), default="constant")
    parser.add_argument("--scenarios", default="S1,S2,S3")
    parser.add_argument("--n-jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--seed", type=int, default=2024)
    add_cluster_arguments(parser)
    args = parser.parse_args()
    configs = config_grid(scenario=args.scenarios.split(","), model=args.model, sizes=args.sizes,
                          q=args.q, penalty=args.penalty, fit=args.fit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # seed_keys=[]: every scenario sees the same random streams at a given replication.
    errors = run_study(replication, configs, args.n_rep, seed=args.seed, n_jobs=args.n_jobs,
                       checkpoint=out / "checkpoint", seed_keys=[], **cluster_options(args))
    errors.to_csv(out / "errors.csv", index=False)
    table = summarize(errors)
    table.to_csv(out / "summary.csv", index=False)
    plot(table, out / "curves.png")
    overall = errors.groupby(["scenario", "method"])[["err_site", "err_late", "err_m"]].mean()
    print(overall.to_string())
    print(f"wrote {out / 'errors.csv'}, {out / 'summary.csv'}, {out / 'curves.png'}")


if __name__ == "__main__":
    main()
