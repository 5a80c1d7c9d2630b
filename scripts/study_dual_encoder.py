"""Simulation study of the dual-encoder multi-task regressor against its baselines.

Each replication simulates R tasks (``hetmtl.simulate.make_dual_encoder_tasks``: covariate shift,
posterior heterogeneity ``h``, optional outlier tasks), fits every method on each task's fitting
rows (each model makes its own 75/25 train/validation split of them: 60/20/20 overall with the
test rows) and scores per-task test RMSE:

* ``dual``: :class:`~hetmtl.dual.DualEncoderMTL` with its defaults;
* ``single``: one MLP per task; ``pooled``: one MLP for all rows; ``hard``: hard parameter
  sharing (shared trunk, task heads);
* ``shared_only`` / ``specific_only``: the dual encoder without its task-specific / shared encoder.

Metrics per method and replication: mean and worst per-task test RMSE, and for the dual encoder
the number of tasks fused with the center and the ``lam_beta`` its validation chose. Expected shape (the method's claims): the dual
encoder beats single-task learning when ``h`` is small and tasks are small, is no worse when the
tasks are unrelated (large ``h``), and beats pooling under posterior drift (``h > 0``).

Run ``python scripts/study_dual_encoder.py --help``. Results are checkpointed in
``OUT_DIR/checkpoint`` (resumable). Outputs in ``OUT_DIR``: ``results.csv``, ``summary.csv``,
``lam_beta_choices.csv`` (how often each ``lam_beta`` was chosen), ``rmse_vs_h.png`` (mean and
worst-task RMSE against h, one panel per n) and ``outliers.png``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hetmtl.simulate import make_dual_encoder_tasks, per_task_rmse
from hetmtl.studies import config_grid, run_study, summarize_study
from hetmtl.studies.cluster_args import add_cluster_arguments, cluster_options

METHODS = ("dual", "single", "pooled", "hard", "shared_only", "specific_only")
DATA_KEYS = ("n_tasks", "n_per_task", "d", "covariate_shift", "n_outliers")

FULL_DESIGN = {"n_tasks": [4], "n_per_task": [50, 200], "d": [10], "covariate_shift": [0.5],
               "h": [0.0, 1.0, 3.0], "n_outliers": [0]}
OUTLIER_DESIGN = {"n_tasks": [4], "n_per_task": [100], "d": [10], "covariate_shift": [0.5],
                  "h": [0.5], "n_outliers": [1]}
QUICK_DESIGN = {"n_tasks": [4], "n_per_task": [50], "d": [10], "covariate_shift": [0.5],
                "h": [0.0, 3.0], "n_outliers": [0]}


def make_method(name: str, seed: int) -> Any:
    """A fresh estimator for one method (defaults of the package, the given seed)."""
    from hetmtl.dual import DualEncoderMTL, HardSharingMTL, PooledMLP, SingleTaskMLP, shared_only, specific_only

    common = dict(random_state=seed, n_threads=1)
    return {
        "dual": lambda: DualEncoderMTL(negative_transfer="off", **common),
        "single": lambda: SingleTaskMLP(**common),
        "pooled": lambda: PooledMLP(**common),
        "hard": lambda: HardSharingMTL(**common),
        "shared_only": lambda: shared_only(negative_transfer="off", **common),
        "specific_only": lambda: specific_only(negative_transfer="off", **common),
    }[name]()


def replication(config: dict, seed: np.random.SeedSequence) -> list[dict]:
    """One data set, every method; one result row per method."""
    data_seed, model_seed = seed.spawn(2)
    ds = make_dual_encoder_tasks(config["n_tasks"], config["n_per_task"], config["d"], h=config["h"],
                                 covariate_shift=config["covariate_shift"], n_outliers=config["n_outliers"],
                                 random_state=data_seed)
    model_int = int(model_seed.generate_state(1)[0])
    rows = []
    inlier = ~ds.outlier
    for name in METHODS:
        est = make_method(name, model_int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(ds.X, ds.y, ds.task)
        rmse = per_task_rmse(ds.y_test, est.predict(ds.X_test, ds.task_test), ds.task_test, ds.n_tasks)
        rows.append({"method": name, "rmse_mean": float(rmse.mean()), "rmse_worst": float(rmse.max()),
                     "rmse_mean_inliers": float(rmse[inlier].mean()),
                     "n_fused": int(est.fused_.sum()) if name == "dual" else -1,
                     "lam_beta": float(est.lam_beta_) if name == "dual" else float("nan")})
    return rows


def plot(summary: pd.DataFrame, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = summary[summary["n_outliers"] == 0]
    ns = sorted(main["n_per_task"].unique())
    fig, axes = plt.subplots(2, len(ns), figsize=(4.5 * len(ns), 7), squeeze=False, sharex=True)
    for j, n in enumerate(ns):
        for i, metric in enumerate(("rmse_mean", "rmse_worst")):
            ax = axes[i, j]
            sub = main[(main["n_per_task"] == n) & (main["metric"] == metric)]
            for method in METHODS:
                m = sub[sub["method"] == method].sort_values("h")
                ax.errorbar(m["h"], m["mean"], yerr=2 * m["mcse"], marker="o", capsize=2, label=method)
            ax.set_title(f"n per task = {n}: {'mean' if i == 0 else 'worst'} task RMSE")
            ax.set_xlabel("posterior heterogeneity h")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "rmse_vs_h.png", dpi=120)
    plt.close(fig)
    out = summary[(summary["n_outliers"] > 0) & (summary["metric"].isin(["rmse_mean", "rmse_mean_inliers"]))]
    if len(out):
        fig, ax = plt.subplots(figsize=(7, 4))
        piv = out.pivot_table(index="method", columns="metric", values="mean").reindex(list(METHODS))
        piv.plot.bar(ax=ax)
        ax.set_ylabel("test RMSE")
        ax.set_title("one outlier task of four (h = 0.5, n = 100)")
        fig.tight_layout()
        fig.savefig(out_dir / "outliers.png", dpi=120)
        plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=20, help="replications per configuration (default 20)")
    ap.add_argument("--quick", action="store_true", help="a small design, for a check of the script")
    ap.add_argument("--n-jobs", type=int, default=1, help="parallel workers")
    ap.add_argument("--seed", type=int, default=20251)
    ap.add_argument("--out-dir", type=Path, default=Path("out/study_dual_encoder"))
    add_cluster_arguments(ap)
    args = ap.parse_args(argv)
    configs = config_grid(**QUICK_DESIGN) if args.quick else config_grid(**FULL_DESIGN) + config_grid(**OUTLIER_DESIGN)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    df = run_study(replication, configs, args.reps, seed=args.seed, n_jobs=args.n_jobs,
                   checkpoint=args.out_dir / "checkpoint", seed_keys=DATA_KEYS,
                   **cluster_options(args))
    df.to_csv(args.out_dir / "results.csv", index=False)
    cols = [c for c in df.attrs["config_columns"]] + ["method"]
    summary = summarize_study(df, by=cols, metrics=["rmse_mean", "rmse_worst", "rmse_mean_inliers"])
    summary.to_csv(args.out_dir / "summary.csv", index=False)
    plot(summary, args.out_dir)
    table = summary[summary["metric"] == "rmse_mean"].pivot_table(
        index=[c for c in cols if c != "method"], columns="method", values="mean")[list(METHODS)]
    dual = df[df["method"] == "dual"]
    keys = [c for c in cols if c != "method"]
    choices = pd.crosstab([dual[c] for c in keys], dual["lam_beta"]).rename(columns=lambda v: f"lam_beta={v:g}")
    choices.to_csv(args.out_dir / "lam_beta_choices.csv")
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(table)
        print("\nlam_beta chosen by the dual encoder's validation (replications):")
        print(choices)


if __name__ == "__main__":
    main()
