"""What a missing source can add to a task's prediction beyond a linear term in the anchor.

For the designs of ``study_blockwise_shared.py`` built with ``make_shared_mapping_tasks``, task 1
misses source 2. Source 2's contribution to the response is ``g(x_2) = b' x_2 + c' tanh(x_2)``;
from the anchor a method can reach at best ``E[g | x_0]``, and of that, mean imputation with
indicators (and task heads reading the shared stream) already gets the part linear in the anchor.
What imputation through the shared mapping adds beyond that, in the ideal, is
``E[g | x_0]`` minus its linear projection on ``x_0``; the rest of its advantage is statistical
efficiency (the anchor's directions estimated once across tasks instead of per task).

The coefficients are read from the generator's output on a large data set: ``b`` is
``v_shared``, ``c`` solves ``f - X b = tanh(X) c`` exactly on noiseless responses, and the link
of the predictable columns is the least-squares fit on the anchor (noise SD as designed).
``E[g | x_0]`` is a Monte-Carlo mean over the link noise. The last column is the mean squared
error of plugging the conditional mean of the source (a perfect deterministic imputation) into
the mapping instead of averaging the mapping over the source's spread: the most that drawing
imputations with their uncertainty could gain. Rerun::

    python scripts/study_blockwise_reachable.py
    python scripts/study_blockwise_reachable.py --imputers   # also the imputers' test RMSE (minutes)

``--imputers`` adds the test RMSE of HBI (the study's grid) and of the iterative imputer on the
predictable columns of missing blocks, 4 data sets per design (the floor is the link noise).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from hetmtl.simulate import make_shared_mapping_tasks

#: Arguments of make_shared_mapping_tasks in the study that only set the size of a data set.
SIZES = {"heldout": {}, "variant": {"n_per_task": 150}}

#: The designs of the study (``study_blockwise_shared.DESIGNS``) built by make_shared_mapping_tasks.
DESIGNS = {"heldout": {}, "variant": {"p_anchor": 15, "p_source": 30, "predictable": 1 / 3, "link_noise": 0.5}}
DEFAULTS = {"p_anchor": 10, "p_source": 20, "predictable": 0.5, "link_noise": 0.3}


def decompose(design: dict, seed: int, n: int = 3000, draws: int = 200) -> dict[str, float]:
    """Variances of source 2's contribution for rows of task 1 (which misses it)."""
    args = {**DEFAULTS, **design}
    d = make_shared_mapping_tasks(n, test_fraction=0.9, random_state=seed, **design)
    X, f = d.X_test_full, d.f_test
    c = np.linalg.lstsq(np.tanh(X), f - X @ d.v_shared, rcond=None)[0]
    p0, ps = args["p_anchor"], args["p_source"]
    k = max(1, min(ps - 1, int(round(args["predictable"] * ps))))
    src = slice(p0 + ps, p0 + ps + k)  # source 2's predictable columns
    x0 = X[d.task_test == 0, :p0]
    design_x0 = np.column_stack([np.ones(len(x0)), x0])
    link = np.linalg.lstsq(design_x0, X[d.task_test == 0, src], rcond=None)[0]
    mean = design_x0 @ link
    rng = np.random.default_rng(seed)
    z = mean[None] + args["link_noise"] * rng.standard_normal((draws, *mean.shape))
    g = z @ d.v_shared[src] + np.tanh(z) @ c[src]
    reachable = g.mean(0)
    plug_in = mean @ d.v_shared[src] + np.tanh(mean) @ c[src]
    linear = design_x0 @ np.linalg.lstsq(design_x0, reachable, rcond=None)[0]
    return {"contribution": float(g.var()), "reachable": float(reachable.var()),
            "beyond_linear": float(np.var(reachable - linear)),
            "plug_in_error": float(np.mean((plug_in - reachable) ** 2))}


def imputation_rmse(name: str, seed: int) -> dict[str, float]:
    """Test RMSE of HBI and of the iterative imputer on the predictable columns of missing blocks."""
    from hetmtl.blockwise import HBIImputer
    from hetmtl.blockwise.simple_imputers import IterativeBlockImputer

    design, args = DESIGNS[name], {**DEFAULTS, **DESIGNS[name]}
    d = make_shared_mapping_tasks(**SIZES[name], **design, random_state=seed)
    p0, ps = args["p_anchor"], args["p_source"]
    k = max(1, min(ps - 1, int(round(args["predictable"] * ps))))
    predictable = np.zeros(d.X.shape[1], dtype=bool)
    for s in range(2):
        predictable[p0 + s * ps:p0 + s * ps + k] = True
    cells = np.isnan(d.X_test) & predictable
    imputers = {"hbi": HBIImputer(d.layout, width=(8, 16, 32), depth=(1, 2, 3), n_threads=1, random_state=seed),
                "iterative": IterativeBlockImputer(d.layout, random_state=seed)}
    out = {}
    for key, imputer in imputers.items():
        with warnings.catch_warnings():  # IterativeImputer's convergence notes
            warnings.simplefilter("ignore")
            filled = imputer.fit(d.X, d.task).transform(d.X_test, d.task_test)
        out[key] = float(np.sqrt(np.mean((filled[cells] - d.X_test_full[cells]) ** 2)))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-data", type=int, default=20, help="data sets per design")
    ap.add_argument("--imputers", action="store_true", help="also the imputers' test RMSE (4 data sets)")
    args = ap.parse_args(argv)
    print("| design | contribution of the predictable part | reachable from the anchor | "
          "beyond a linear anchor term | plug-in error of the conditional mean |")
    print("| --- | --- | --- | --- | --- |")
    for name, design in DESIGNS.items():
        rows = [decompose(design, seed) for seed in range(args.n_data)]
        mean = {k: np.mean([r[k] for r in rows]) for k in rows[0]}
        print(f"| {name} | {mean['contribution']:.3f} | {mean['reachable']:.3f} | {mean['beyond_linear']:.4f} | "
              f"{mean['plug_in_error']:.4f} |")
    if args.imputers:
        print("\n| design | HBI | iterative | floor (link noise) |\n| --- | --- | --- | --- |")
        for name in DESIGNS:
            rows = [imputation_rmse(name, seed) for seed in range(4)]
            floor = {**DEFAULTS, **DESIGNS[name]}["link_noise"]
            print(f"| {name} | {np.mean([r['hbi'] for r in rows]):.3f} | "
                  f"{np.mean([r['iterative'] for r in rows]):.3f} | {floor} |")


if __name__ == "__main__":
    main()
