"""Where does the full dual encoder lose at small tasks? Measurements on the ``specific`` design of
``scripts/study_dual_specific.py`` (R = 6, ``n_r`` = 50 by default).

Every model of a replication sees the same split (``hetmtl.dual._data.prepare``) and the same
initial weights where it has the same network. Per replication and model the script records:
the mean per-task test RMSE, the validation loss it early-stopped on, the training loss at the
kept round, the kept round and the rounds run, ``lam_beta_`` and how many tasks keep their
specific encoder. It also fits:

* each of ``dual`` and ``shared_only`` with three seeds on the same split (the seed-to-seed spread
  of the test RMSE against the spread between data sets, and what averaging the three buys);
* the full model with its specific part switched off in every task after training (heads
  re-solved on the shared encoding alone: do the specific encoders help on test rows at all?);
* the full model started from the fitted ``shared_only`` solution (its shared encoder and heads),
  trained on with the shared encoder (``warm_all``) or with only the task-specific encoders
  (``warm_specific``); the start is kept when the continuation does not lower the validation loss.

Run ``python scripts/diagnose_dual_small.py --reps 12 --n-jobs 2``; the per-fit rows go to
``OUT_DIR/diagnose.csv`` and a summary is printed.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from hetmtl.simulate import make_dual_encoder_tasks, per_task_rmse
from hetmtl.studies import run_study

N_TEST = 500
DESIGN = dict(n_tasks=6, d=8, n_shared=2, signal=2.0, specific=1.5, noise=0.5, covariate_shift=1.0)
N_SEEDS = 3
#: Single fits: the script measures what one fit does (the estimators' default is an ensemble).
ONE = dict(negative_transfer="off", n_threads=1, ensemble_size=1)


def _test_rmse(model, ds) -> tuple[float, np.ndarray]:
    pred = model.predict(ds.X_test, ds.task_test)
    return float(per_task_rmse(ds.y_test, pred, ds.task_test, ds.n_tasks).mean()), pred


def _train_loss_at_best(model) -> float:
    hist = model.history_
    row = hist[hist["epoch"] == model.best_epoch_]
    return float(row["train_loss"].iloc[0]) if len(row) else float("nan")


def _record(name: str, model, ds, seed_index: int) -> tuple[dict, np.ndarray]:
    rmse, pred = _test_rmse(model, ds)
    return {"model": name, "seed": seed_index, "rmse": rmse,
            "val_mse": float(np.mean(model.validation_loss_)),
            "train_loss_at_best": _train_loss_at_best(model), "best_epoch": int(model.best_epoch_),
            "n_epochs": int(model.n_epochs_), "lam_beta": float(model.lam_beta_),
            "n_specific_used": int(np.sum(model.specific_used_))}, pred


def _shared_part_only(full, prep, ds) -> float:
    """Test RMSE of the full model with every task's specific part switched off after training."""
    from hetmtl.dual.alternating import settle_heads

    train = full._data(prep.train, prep.n_tasks)
    cfg = replace(full.config_, penalty_alpha="none")
    # heads for the shared encoding alone: the network without its specific encoders
    start = replace(full.heads_, alpha=np.zeros((prep.n_tasks, 0)), alpha_center=np.zeros(0))
    net = full.net_
    saved = net.specific
    net.specific = None
    try:
        model = _clone_with(full, net, settle_heads(net, train, start, cfg))
        rmse, _ = _test_rmse(model, ds)
    finally:
        net.specific = saved
    return rmse


def _clone_with(template, net, heads):
    import copy

    model = copy.copy(template)
    model.net_ = net
    model.heads_ = heads
    model.members_ = []  # predict from net_ and heads_
    model.fallback_ = np.zeros(template.n_tasks_, bool)
    return model


def _warm(shared_fit, prep, seed, train_shared: bool):
    """The full model started from a fitted shared_only model."""
    from hetmtl.dual import DualEncoderMTL
    from hetmtl.dual.alternating import Heads, fit_alternating

    est = DualEncoderMTL(**ONE)
    est._check_common()
    est._check_params()
    R = prep.n_tasks
    train, val = est._data(prep.train, R), est._data(prep.val, R)
    net, _ = est._network(R, prep.n_features, seed)
    net.shared.load_state_dict(shared_fit.net_.shared.state_dict())
    groups = [list(net.specific.parameters()) + (list(net.shared.parameters()) if train_shared else [])]
    if not train_shared:
        net.shared.requires_grad_(False)
    cfg = est._config(prep.train.sizes, update_center=True, lam_beta=shared_fit.lam_beta_)
    h0 = shared_fit.heads_
    heads = Heads(np.zeros((R, net.q)), h0.beta.copy(), h0.intercept.copy(), np.zeros(net.q), h0.beta_center.copy(),
                  np.zeros(R, bool), h0.fused_beta.copy())
    res = fit_alternating(net, groups, train, val, heads, cfg, None)
    evidence = est._select_specific(net, train, val, res, cfg)
    start_loss = float(np.mean(shared_fit.validation_loss_)) / prep.scaler.y_scale ** 2
    kept_start = not res.val_loss < start_loss
    model = _clone_with(shared_fit, shared_fit.net_, shared_fit.heads_)
    if not kept_start:
        model = _clone_with(shared_fit, net, res.heads)
    return model, {"best_epoch": res.best_epoch, "n_epochs": res.n_epochs, "kept_start": kept_start,
                   "n_specific_used": int(evidence.used.sum()) if not kept_start else 0,
                   "val_mse": min(res.val_loss, start_loss) * prep.scaler.y_scale ** 2}


def replication(config: dict, seed: np.random.SeedSequence) -> list[dict]:
    from hetmtl._util.tasks import child_seed
    from hetmtl.dual import DualEncoderMTL, shared_only, specific_only
    from hetmtl.dual._data import prepare
    from hetmtl.nn.estimator import SEED_SPLIT

    data_seed, model_seed = seed.spawn(2)
    n = int(config["n_r"]) + N_TEST
    ds = make_dual_encoder_tasks(n_per_task=n, test_fraction=N_TEST / n, random_state=data_seed, **DESIGN)
    root = np.random.SeedSequence(int(model_seed.generate_state(1)[0]))
    prep = prepare(ds.X, ds.y, ds.task, 0.2, "pooled", child_seed(root, SEED_SPLIT))
    seeds = [root] + [np.random.SeedSequence(int(root.generate_state(1)[0]) + k) for k in range(1, N_SEEDS)]
    rows, preds = [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {}
        for name, make in (("dual", lambda: DualEncoderMTL(**ONE)), ("shared_only", lambda: shared_only(**ONE))):
            for k, s in enumerate(seeds):
                model = make().fit_prepared(prep, s)
                row, pred = _record(name, model, ds, k)
                rows.append(row)
                preds.setdefault(name, []).append(pred)
                fits[(name, k)] = model
        model = specific_only(**ONE).fit_prepared(prep, root)
        rows.append(_record("specific_only", model, ds, 0)[0])
        rows.append({"model": "dual_shared_part", "seed": 0, "rmse": _shared_part_only(fits[("dual", 0)], prep, ds)})
        for name, train_shared in (("warm_all", True), ("warm_specific", False)):
            model, info = _warm(fits[("shared_only", 0)], prep, root, train_shared)
            rows.append({"model": name, "seed": 0, "rmse": _test_rmse(model, ds)[0], **info})
    for name, p in preds.items():
        mean = np.mean(p, axis=0)
        rows.append({"model": f"{name}_avg{N_SEEDS}", "seed": -1,
                     "rmse": float(per_task_rmse(ds.y_test, mean, ds.task_test, ds.n_tasks).mean())})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=Path("out/diagnose_dual_small"))
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--n-r", type=int, default=50)
    ap.add_argument("--reps", type=int, default=12)
    ap.add_argument("--n-jobs", type=int, default=1)
    args = ap.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    df = run_study(replication, [{"n_r": args.n_r}], args.reps, seed=args.seed, n_jobs=args.n_jobs,
                   checkpoint=args.out_dir / f"checkpoint_{args.n_r}")
    df.to_csv(args.out_dir / f"diagnose_{args.n_r}.csv", index=False)
    first = df[df["seed"] <= 0]
    wide = first.pivot_table(index="rep", columns="model", values="rmse")
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(first.groupby("model")[["rmse", "val_mse", "train_loss_at_best", "best_epoch", "n_epochs",
                                      "n_specific_used"]].mean())
        for other in wide.columns:
            d = wide[other] - wide["shared_only"]
            print(f"{other} - shared_only: {d.mean():+.4f} ({d.std(ddof=1) / np.sqrt(d.size):.4f})")
        seeds = df[df["seed"] >= 0].groupby(["rep", "model"])["rmse"].std().groupby("model").mean()
        print("mean seed-to-seed SD of the test RMSE:\n", seeds)
        print("SD across data sets:\n", wide.std())


if __name__ == "__main__":
    main()
