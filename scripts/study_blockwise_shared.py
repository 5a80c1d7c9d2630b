"""Block-wise missing sources: does imputation carry information across tasks?

Compares the two-pathway model's default (a shared encoder on the completed row, gated imputed
inputs, HBI imputation) with the paper's architecture (shared encoder on the anchor only) and the
competitors, per replication on the same data:

* ``default``: ``TwoPathwayMTL(layout)`` (shared architecture, HBI);
* ``paper_hbi``: ``TwoPathwayMTL(layout, architecture="paper")`` (HBI, task encoders on the
  completed vector: the paper's pipeline);
* ``htl``: the paper's model without imputation (task encoders on their own sources);
* ``mean`` / ``iterative``: the default architecture on mean / IterativeImputer imputations;
* ``none``: the paper's architecture with no imputation (task encoders on the observed sources);
* ``single``: one MLP per task on its observed sources.

Designs (``--part``):

* ``heldout``: ``make_shared_mapping_tasks`` with its defaults (3 tasks, anchor of 10 columns, two
  sources of 20 columns, half of each predictable from the anchor; task 1 observes source 1,
  task 2 source 2, task 3 both; one response mapping for every task), 200 rows per task;
* ``variant``: the same kind of design at other sizes and shares (anchor 15, sources of 30 with
  a third predictable, 150 rows per task, noisier link), fixed before any result was seen;
* ``paper``: the paper's setting A at rho_2 = 0.7 (``hetmtl.simulate.blockwise_setting``).

HBI is fitted once per replication (the paper's grid of 18 networks per source, otherwise package
defaults, on every fitting row, as a model fits it) and shared by ``default`` and ``paper_hbi``.

Metrics per method and replication: mean task test RMSE, and its difference to ``default`` on
the same data (paired). Results are checkpointed in ``OUT_DIR/checkpoint`` (rerunning resumes);
``OUT_DIR`` gets ``results.csv``, ``summary.csv``, ``paired.csv``, ``rmse.png`` and
``tables.md`` (parts not run keep their rows of an earlier ``results.csv``). ``--quick`` runs the
held-out design with 4 replications and the default, HTL, mean imputation and single-task
learning only, into ``OUT_DIR/quick``. Rerun: ``python scripts/study_blockwise_shared.py
--out-dir docs/studies/blockwise --n-jobs 2``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hetmtl._util.io import atomic_write_bytes
from hetmtl.simulate import blockwise_setting, make_blockwise_tasks, make_shared_mapping_tasks, per_task_rmse
from hetmtl.studies import config_grid, run_study, summarize_study

METHODS = ("default", "paper_hbi", "htl", "mean", "iterative", "none", "single")

#: Designs of each part: name -> arguments of the generator ("gen": which one).
DESIGNS: dict[str, dict[str, dict[str, Any]]] = {
    "heldout": {"heldout": {"gen": "shared"}},
    "variant": {"variant": {"gen": "shared", "n_per_task": 150, "p_anchor": 15, "p_source": 30,
                            "predictable": 1 / 3, "link_noise": 0.5}},
    "paper": {"A_rho0.7": {"gen": "paper", "setting": "A", "value": 0.7}},
}
REPS = {"heldout": 8, "variant": 40, "paper": 10}

#: ``--quick``: the held-out design, 4 replications, the default against the competitors it must
#: beat (HTL, mean imputation, single task). The data and seeds are those of the full study's first
#: replications, so the quick rows equal the full study's rows for these methods.
QUICK_PART, QUICK_REPS, QUICK_METHODS = "heldout", 4, ("default", "htl", "mean", "single")

#: The paper's published mean task RMSE (authors' code, Gaussian, 20 seeds).
PUBLISHED = {"A_rho0.7": {"paper_hbi": 0.50, "single": 0.53, "htl": 0.71},
             "T4": {"paper_hbi": 0.57, "single": 0.70, "htl": 0.75}}


class Fitted:
    """An imputer fitted once and shared by the methods of a replication (its ``fit`` keeps it)."""

    def __init__(self, imputer: Any):
        self.imputer = imputer

    def fit(self, X: Any, task: Any) -> "Fitted":
        return self

    def transform(self, X: Any, task: Any) -> np.ndarray:
        return self.imputer.transform(X, task)


def make_method(name: str, layout: Any, seed: int, hbi: Any) -> Any:
    """A fresh estimator of one method (package defaults, one thread, the given seed); ``hbi`` is
    the replication's HBI imputer, fitted on the same rows a model would fit it on."""
    from hetmtl import blockwise as bw

    common = dict(random_state=seed, n_threads=1)
    return {
        "default": lambda: bw.TwoPathwayMTL(layout, imputer=Fitted(hbi), **common),
        "paper_hbi": lambda: bw.TwoPathwayMTL(layout, imputer=Fitted(hbi), architecture="paper", **common),
        "htl": lambda: bw.htl(layout, **common),
        "mean": lambda: bw.TwoPathwayMTL(layout, imputer="mean", **common),
        "iterative": lambda: bw.TwoPathwayMTL(layout, imputer="iterative", **common),
        "none": lambda: bw.TwoPathwayMTL(layout, imputer=None, architecture="paper", **common),
        "single": lambda: bw.SingleTaskBlockMLP(layout, **common),
    }[name]()


def simulate(design: str, part: str, seed: np.random.SeedSequence):
    args = dict(DESIGNS[part][design])
    if args.pop("gen") == "shared":
        return make_shared_mapping_tasks(**args, random_state=seed)
    return make_blockwise_tasks(**blockwise_setting(args["setting"], args.get("value")), random_state=seed)


def replication(config: dict, seed: np.random.SeedSequence, methods: tuple[str, ...] = METHODS) -> list[dict]:
    """One data set, each of ``methods``; one row per method."""
    data_seed, model_seed = seed.spawn(2)
    ds = simulate(config["design"], config["part"], data_seed)
    model_int = int(model_seed.generate_state(1)[0])
    from hetmtl.blockwise import HBIImputer

    hbi = HBIImputer(ds.layout, width=(8, 16, 32), depth=(1, 2, 3), n_threads=1, random_state=model_int)
    hbi.fit(ds.X, ds.task)
    rows = []
    for name in methods:
        est = make_method(name, ds.layout, model_int, hbi)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(ds.X, ds.y, ds.task)
        rmse = per_task_rmse(ds.y_test, est.predict(ds.X_test, ds.task_test), ds.task_test, ds.n_tasks)
        rows.append({"method": name, "rmse_mean": float(rmse.mean()), "rmse_worst": float(rmse.max())})
    return rows


def quick_replication(config: dict, seed: np.random.SeedSequence) -> list[dict]:
    """One data set, the methods of ``--quick`` only."""
    return replication(config, seed, QUICK_METHODS)


def paired(results: pd.DataFrame) -> pd.DataFrame:
    """Per design and method: mean difference of its RMSE to ``default`` on the same data, its SE
    over replications and the difference in SEs (positive: ``default`` is better)."""
    wide = results.pivot_table(index=["design", "rep"], columns="method", values="rmse_mean")
    out = []
    for design in dict.fromkeys(results["design"]):  # designs in the order of the study
        sub = wide.xs(design, level="design")
        for method in [m for m in METHODS[1:] if m in sub]:
            d = (sub[method] - sub["default"]).dropna()
            se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
            out.append({"design": design, "method": method, "n_rep": int(d.size), "diff": float(d.mean()),
                        "se": se, "z": float(d.mean() / se) if se > 0 else float("nan")})
    return pd.DataFrame(out)


def markdown(summary: pd.DataFrame, pairs: pd.DataFrame) -> str:
    main = summary[summary["metric"] == "rmse_mean"]
    lines = ["| design | " + " | ".join(METHODS) + " |", "|" + " --- |" * (len(METHODS) + 1)]
    for design, sub in main.groupby("design", sort=False):
        cell = {r.method: f"{r.mean:.3f} ± {r.mcse:.3f}" for r in sub.itertuples()}
        lines.append(f"| {design} | " + " | ".join(cell.get(m, "") for m in METHODS) + " |")
        if design in PUBLISHED:
            pub = PUBLISHED[design]
            lines.append(f"| {design}, published | " + " | ".join(
                f"{pub[m]:.2f}" if m in pub else "" for m in METHODS) + " |")
    lines += ["", "| design | method | replications | RMSE minus default | SE | difference / SE |",
              "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r.design} | {r.method} | {r.n_rep} | {r.diff:+.3f} | {r.se:.3f} | {r.z:+.1f} |"
              for r in pairs.itertuples()]
    return "\n".join(lines) + "\n"


def plot(results: pd.DataFrame, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    designs = list(dict.fromkeys(results["design"]))
    fig, axes = plt.subplots(1, len(designs), figsize=(4.2 * len(designs), 3.8), squeeze=False)
    for ax, design in zip(axes[0], designs):
        sub = results[results["design"] == design]
        methods = [m for m in METHODS if (sub["method"] == m).any()]
        data = [sub.loc[sub["method"] == m, "rmse_mean"].to_numpy() for m in methods]
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(methods) + 1), methods, rotation=45, ha="right")
        for m, v in PUBLISHED.get(design, {}).items():
            if m not in methods:
                continue
            ax.plot(methods.index(m) + 1, v, marker="*", color="k", markersize=10, linestyle="none")
        ax.set_title(design)
        ax.set_ylabel("mean task test RMSE")
    fig.tight_layout()
    fig.savefig(out_dir / "rmse.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=Path("study_blockwise_shared"))
    ap.add_argument("--parts", default="heldout,variant,paper", help="comma-separated among " + ", ".join(DESIGNS))
    ap.add_argument("--n-rep", type=int, default=None, help="replications per design (default: per part)")
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--quick", action="store_true",
                    help=f"the {QUICK_PART} design, {QUICK_REPS} replications, methods {', '.join(QUICK_METHODS)}")
    args = ap.parse_args(argv)
    parts = [QUICK_PART] if args.quick else args.parts.split(",")
    unknown = [p for p in parts if p not in DESIGNS]
    if unknown:
        ap.error(f"--parts: unknown part(s) {unknown}")
    out_dir = args.out_dir / "quick" if args.quick else args.out_dir  # never mixed with the full study
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = []
    for part in parts:  # one run per part: parts have their own replication counts
        configs = config_grid(part=[part], design=list(DESIGNS[part]))
        n_rep = args.n_rep or (QUICK_REPS if args.quick else REPS[part])
        fn = quick_replication if args.quick else replication
        frames.append(run_study(fn, configs, n_rep, seed=args.seed, n_jobs=args.n_jobs,
                                checkpoint=out_dir / "checkpoint" / part, progress=True))
    earlier = out_dir / "results.csv"
    if earlier.exists():  # parts not run this time keep their rows (the tables cover every part)
        old = pd.read_csv(earlier)
        frames.insert(0, old[~old["part"].isin(parts)])
    results = pd.concat(frames, ignore_index=True)
    results = results.sort_values("part", key=lambda c: c.map(list(DESIGNS).index), kind="stable")
    summary = summarize_study(results, by=["design", "method"], metrics=["rmse_mean", "rmse_worst"])
    pairs = paired(results)
    table = markdown(summary, pairs)
    for name, frame in (("results", results), ("summary", summary), ("paired", pairs)):
        atomic_write_bytes(out_dir / f"{name}.csv", frame.to_csv(index=False).encode())
    atomic_write_bytes(out_dir / "tables.md", table.encode())
    plot(results, out_dir)
    print(table)


if __name__ == "__main__":
    main()
