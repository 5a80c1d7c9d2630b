"""Study of the dual encoder's task-specific encoders: do they stay on where tasks have their own signal?

Designs (``hetmtl.simulate.make_dual_encoder_tasks``; every task gets ``n_r`` rows to fit on and
500 test rows):

* ``specific``: R = 6 tasks, d = 8 covariates with covariate shift (1.0) across tasks; each
  response is a shared two-factor nonlinear part (``tanh`` of two fixed directions, head norm 2,
  the same for every task) plus a strong task-specific nonlinear part along the task's own two
  directions (``sin`` and a square, head norm 1.5) plus noise with SD 0.5; ``n_r`` = 50 and 200.
* ``unrelated``: as ``specific`` without the shared part: each task is its own nonlinear
  function of its own directions.
* ``heldout``: a variant kept out of development (R = 10, d = 12, three shared factors, head
  norms 2 and 1, noise SD 1, covariate shift 0.7, ``n_r`` = 100).
* ``heldout_few``: defined before any result on it was seen: R = 4 tasks, d = 6, two shared
  factors, head norms 1.5 and 1.5, noise SD 0.7, strong covariate shift 1.5, ``n_r`` = 50.
* ``heldout_many``: defined before any result on it was seen: R = 12 tasks, d = 10, four shared
  factors, head norms 2 and 1, noise SD 0.5, weak covariate shift 0.3, ``n_r`` = 60.

Methods (package defaults, the same seed): ``dual`` (:class:`~hetmtl.dual.DualEncoderMTL`, an
ensemble of ``ensemble_size=3`` fits), ``dual_one`` (the defaults before: one fit,
``ensemble_size=1``), ``shared_only`` and ``specific_only`` (the ablations, with the same
ensemble), ``shared_only_one`` (the ablation as a single fit), ``single`` (one MLP per task) and
``pooled`` (one MLP for all rows).

Metrics per method and replication: mean per-task test RMSE; for the dual encoders the share of
tasks whose specific encoder is switched off and the fit time.

Run ``python scripts/study_dual_specific.py --help``; results are checkpointed in
``OUT_DIR/checkpoint`` (resumable). Outputs in ``OUT_DIR``: ``results.csv``, ``summary.csv``,
``paired.csv`` (paired differences with Monte-Carlo SEs) and ``specific_encoders.png``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hetmtl.simulate import make_dual_encoder_tasks, per_task_rmse
from hetmtl.studies import run_study, summarize_study
from hetmtl.studies.cluster_args import add_cluster_arguments, cluster_options

METHODS = ("dual", "dual_one", "shared_only", "shared_only_one", "specific_only", "single", "pooled")
N_TEST = 500
DESIGNS = {
    "specific": dict(n_tasks=6, d=8, n_shared=2, signal=2.0, specific=1.5, noise=0.5, covariate_shift=1.0),
    "unrelated": dict(n_tasks=6, d=8, n_shared=2, signal=0.0, specific=1.5, noise=0.5, covariate_shift=1.0),
    "heldout": dict(n_tasks=10, d=12, n_shared=3, signal=2.0, specific=1.0, noise=1.0, covariate_shift=0.7),
    "heldout_few": dict(n_tasks=4, d=6, n_shared=2, signal=1.5, specific=1.5, noise=0.7, covariate_shift=1.5),
    "heldout_many": dict(n_tasks=12, d=10, n_shared=4, signal=2.0, specific=1.0, noise=0.5, covariate_shift=0.3),
}
CONFIGS = [{"design": "specific", "n_r": 50}, {"design": "specific", "n_r": 200},
           {"design": "unrelated", "n_r": 50}, {"design": "unrelated", "n_r": 200},
           {"design": "heldout", "n_r": 100}, {"design": "heldout_few", "n_r": 50},
           {"design": "heldout_many", "n_r": 60}]
QUICK_CONFIGS = [{"design": "specific", "n_r": 50}]

#: The defaults before the ensemble: one fit.
ONE_FIT = dict(ensemble_size=1)


def make_method(name: str, seed: int) -> Any:
    """A fresh estimator for one method (package defaults, the given seed)."""
    from hetmtl.dual import DualEncoderMTL, PooledMLP, SingleTaskMLP, shared_only, specific_only

    common = dict(random_state=seed, n_threads=1)
    return {
        "dual": lambda: DualEncoderMTL(negative_transfer="off", **common),
        "dual_one": lambda: DualEncoderMTL(negative_transfer="off", **ONE_FIT, **common),
        "shared_only": lambda: shared_only(negative_transfer="off", **common),
        "shared_only_one": lambda: shared_only(negative_transfer="off", **ONE_FIT, **common),
        "specific_only": lambda: specific_only(negative_transfer="off", **common),
        "single": lambda: SingleTaskMLP(**common),
        "pooled": lambda: PooledMLP(**common),
    }[name]()


def simulate(config: dict, seed: np.random.SeedSequence):
    """The data set of one replication: ``n_r`` rows to fit on and ``N_TEST`` test rows per task."""
    n = int(config["n_r"]) + N_TEST
    return make_dual_encoder_tasks(n_per_task=n, test_fraction=N_TEST / n, random_state=seed,
                                   **DESIGNS[config["design"]])


def replication(config: dict, seed: np.random.SeedSequence) -> list[dict]:
    """One data set, every method; one result row per method."""
    data_seed, model_seed = seed.spawn(2)
    ds = simulate(config, data_seed)
    model_int = int(model_seed.generate_state(1)[0])
    has_specific = ds.alpha.any(axis=1)
    rows = []
    for name in METHODS:
        est = make_method(name, model_int)
        start = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(ds.X, ds.y, ds.task)
        seconds = time.process_time() - start
        rmse = per_task_rmse(ds.y_test, est.predict(ds.X_test, ds.task_test), ds.task_test, ds.n_tasks)
        # share over all members of the ensemble (one row per member)
        used = getattr(est, "member_specific_used_", None) if name.startswith("dual") else None
        off = None if used is None else ~used
        rows.append({"method": name, "rmse_mean": float(rmse.mean()), "rmse_worst": float(rmse.max()),
                     "cpu_seconds": seconds,
                     "specific_off": float(off[:, has_specific].mean()) if off is not None else float("nan")})
    return rows


def paired(df: pd.DataFrame, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """Mean difference of the per-replication mean RMSE of two methods, with its Monte-Carlo SE."""
    out = []
    wide = df.pivot_table(index=["design", "n_r", "rep"], columns="method", values="rmse_mean")
    for (design, n_r), cell in wide.groupby(level=["design", "n_r"], sort=False):
        for a, b in pairs:
            d = (cell[a] - cell[b]).dropna()
            out.append({"design": design, "n_r": n_r, "comparison": f"{a} - {b}", "reps": d.size,
                        "mean": d.mean(), "mcse": d.std(ddof=1) / np.sqrt(d.size),
                        "z": d.mean() / (d.std(ddof=1) / np.sqrt(d.size))})
    return pd.DataFrame(out)


def plot(summary: pd.DataFrame, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = summary[["design", "n_r"]].drop_duplicates().to_records(index=False)
    fig, axes = plt.subplots(1, len(cells), figsize=(3.2 * len(cells), 3.8), squeeze=False)
    for ax, (design, n_r) in zip(axes[0], cells):
        sub = summary[(summary["design"] == design) & (summary["n_r"] == n_r) & (summary["metric"] == "rmse_mean")]
        sub = sub.set_index("method").reindex(list(METHODS))
        ax.errorbar(np.arange(len(METHODS)), sub["mean"], yerr=2 * sub["mcse"], fmt="o", capsize=3)
        ax.set_xticks(np.arange(len(METHODS)), [m.replace("_", "\n") for m in METHODS], fontsize=7)
        ax.set_title(f"{design}, n_r = {n_r}", fontsize=9)
    axes[0, 0].set_ylabel("mean per-task test RMSE (+- 2 SE)")
    fig.tight_layout()
    try:
        fig.savefig(out_dir / "specific_encoders.png", dpi=120)
    finally:
        plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=Path("out/study_dual_specific"))
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--designs", nargs="*", default=None, help="only these designs (default: all)")
    ap.add_argument("--reps", type=int, default=10, help="replications per configuration (default 10)")
    ap.add_argument("--n-jobs", type=int, default=1, help="parallel workers")
    ap.add_argument("--quick", action="store_true", help="one small cell, for a check of the script")
    add_cluster_arguments(ap)
    args = ap.parse_args(argv)
    configs = QUICK_CONFIGS if args.quick else CONFIGS
    if args.designs:
        configs = [c for c in configs if c["design"] in args.designs]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    df = run_study(replication, configs, args.reps, seed=args.seed, n_jobs=args.n_jobs,
                   checkpoint=args.out_dir / "checkpoint", **cluster_options(args))
    df.to_csv(args.out_dir / "results.csv", index=False)
    summary = summarize_study(df, by=["design", "n_r", "method"],
                              metrics=["rmse_mean", "rmse_worst", "specific_off", "cpu_seconds"])
    summary.to_csv(args.out_dir / "summary.csv", index=False)
    pairs = paired(df, [("dual", "shared_only"), ("dual", "single"), ("dual", "dual_one"),
                        ("dual", "shared_only_one"), ("dual", "pooled"), ("dual", "specific_only"),
                        ("dual_one", "shared_only_one")])
    pairs.to_csv(args.out_dir / "paired.csv", index=False)
    plot(summary, args.out_dir)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.precision", 3):
        print(summary.pivot_table(index=["design", "n_r"], columns=["metric", "method"], values="mean")
              .reindex(columns=list(METHODS), level="method").T)
        print(pairs)


if __name__ == "__main__":
    main()
