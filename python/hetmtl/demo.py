"""A short demonstration: six sites of the RAND Health Insurance Experiment, fused at a center.

Question: how much does free medical care (no cost sharing at all) raise medical spending,
compared with insurance plans that make people pay part of the bill? The RAND experiment
randomized families to plans within each of six sites, so each site can answer the question on
its own rows. Here every site

1. estimates the average treatment effect (ATE) of free care on ``log(1 + medical spending)``
   by double machine learning with the AIPW score (:class:`~hetmtl.fusion.site_dml.SiteDML`,
   ``model="irm"``), with random forests for the nuisances and cross-fitting folds and standard
   errors clustered on the person (a person is seen in up to five years), and
2. writes its summary JSON (estimate, score moments, n, fold summaries; no row-level data).

The center then reads the JSON files back, as it would receive them, and fuses them with
:class:`~hetmtl.fusion.late_fusion.LateFusion` and its default method, robust empirical Bayes:
each site is shrunk towards a common center as much as the between-site spread allows, and a site
several standard errors away from the others keeps its own estimate. The classic meta-analysis
statistics (fixed and random effects, Q, I^2, tau^2, prediction interval) are printed alongside.

Run it with ``hetmtl demo`` or :func:`run_demo`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from ._util.seeds import int_seeds
from ._util.validation import check_int_at_least
from .fusion.report import fusion_report, write_fusion_files

if TYPE_CHECKING:  # pragma: no cover
    from .fusion.heterogeneity import MetaAnalysis
    from .fusion.late_fusion import LateFusion

OUTCOME = "log_med_spend"
TREATMENT = "free_care"
CLUSTER = "person"
# Persons kept per site in quick mode (about 3.4 person-years each).
_QUICK_PERSONS = 150


@dataclass
class DemoResult:
    """What :func:`run_demo` computed and wrote.

    Attributes
    ----------
    site_table : pandas.DataFrame
        Per site: person-years, persons, share with free care, ATE, standard error, interval and
        the range of the estimated propensity scores.
    fusion : LateFusion
        The fit at the center (on the summaries read back from disk).
    meta : MetaAnalysis
        Classic meta-analysis of the six site estimates.
    leave_one_out : pandas.DataFrame
        The center refitted without each site in turn.
    files : dict
        Role -> path of every file written (one ``summary:<site>`` entry per site).
    seconds : float
        Wall time of the whole demonstration.
    """

    site_table: pd.DataFrame
    fusion: "LateFusion"
    meta: "MetaAnalysis"
    leave_one_out: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = math.nan


def demo_learners(quick: bool = False, random_state: int | None = None) -> dict[str, Any]:
    """The nuisance learners of the demonstration.

    The registry's random forests (:func:`~hetmtl.fusion.learners.make_learner`) for both the
    outcome regressions (fitted separately on the treated and the controls) and the propensity
    score, with half the covariates tried per split and large leaves (20 and 50 person-years): the
    outcome has a spike at zero and a long right tail, and in a randomized experiment the
    propensity varies little, so a smooth fit serves better than a deep one.

    Parameters
    ----------
    quick : bool
        Fewer trees (a test run).
    random_state : int, optional
        Seed of the forests.

    Returns
    -------
    dict
        ``{"ml_g": RandomForestRegressor, "ml_m": RandomForestClassifier}``.
    """
    from .fusion.learners import make_learner

    n_trees = 20 if quick else 100
    seeds = [None, None] if random_state is None else int_seeds(np.random.SeedSequence(random_state), 2)
    return {
        "ml_g": make_learner("rf", "regressor", random_state=seeds[0], n_estimators=n_trees,
                             min_samples_leaf=20, max_features=0.5),
        "ml_m": make_learner("rf", "classifier", random_state=seeds[1], n_estimators=n_trees,
                             min_samples_leaf=50, max_features=0.5),
    }


def _quick_subsample(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Keep ``_QUICK_PERSONS`` random persons (all their years) per site."""
    keep = []
    for _, persons in df.groupby("site", sort=True)["person"]:
        ids = np.unique(persons.to_numpy())
        keep.append(rng.choice(ids, size=min(_QUICK_PERSONS, ids.size), replace=False))
    return df[df["person"].isin(np.concatenate(keep))].reset_index(drop=True)


def run_demo(out_dir: str | os.PathLike = "hetmtl-demo", n_folds: int = 5, random_state: int = 0,
             quick: bool = False, verbose: bool = True) -> DemoResult:
    """Run the six-site RAND HIE demonstration: site summaries, fusion, tables and plots.

    Parameters
    ----------
    out_dir : str or path-like, default "hetmtl-demo"
        Folder for the outputs (created if needed): ``summaries/<site>.json`` (what each site
        sends), ``site_estimates.csv``, ``fused.csv``, ``fused.json``, ``heterogeneity.json``,
        ``forest.png`` and ``path.png``.
    n_folds : int, default 5
        Cross-fitting folds at each site.
    random_state : int, default 0
        Seed of everything (folds, forests, bootstrap, the quick subsample).
    quick : bool, default False
        150 persons per site and 20 trees per forest, with 200 bootstrap draws: a run of seconds
        that exercises every step (the numbers are then noisy). The full run takes 30-60 seconds
        on two cores.
    verbose : bool, default True
        Print the tables and the interpretation.

    Returns
    -------
    DemoResult

    Notes
    -----
    Why ``model="irm"``: the treatment is binary and was randomized, and the AIPW score targets the
    average treatment effect of free care in the site's population directly. The partially linear
    model (``"plr"``) would estimate a variance-weighted average of effects instead, which equals
    the ATE only when the effect is the same for everyone.

    The plan was randomized per family; the data identify persons, not families, so clustering
    on the person is the closest available (family members' spending is correlated, and the
    standard errors may be somewhat small).
    """
    from .datasets import RAND_HIE_COVARIATES, load_rand_hie

    n_folds = check_int_at_least(n_folds, "n_folds", 2, integer_type=True)
    random_state = check_int_at_least(random_state, "random_state", 0, integer_type=True)
    start = time.perf_counter()
    say = print if verbose else (lambda *a, **k: None)
    out = Path(out_dir)
    summary_dir = out / "summaries"
    summary_dir.mkdir(parents=True, exist_ok=True)

    data = load_rand_hie()
    # Spawned from a fresh root, so the streams are the same on every run with this seed.
    s_sub, s_sites, s_center = np.random.SeedSequence(random_state).spawn(3)
    if quick:
        data = _quick_subsample(data, np.random.default_rng(s_sub))
    x = list(RAND_HIE_COVARIATES)
    say("\n".join(_intro(n_folds, x, quick)))

    files: dict[str, Path] = {}
    site_table = _site_estimates(data, x, n_folds, quick, s_sites, summary_dir, files)
    files["site_estimates"] = out / "site_estimates.csv"
    site_table.to_csv(files["site_estimates"])
    say("Step 1, at each site: the DML estimate (95% Wald interval) and the range of the "
        "cross-fitted propensity scores")
    say(site_table.to_string(float_format=lambda v: f"{v:.3g}"))
    say(f"Each site wrote {summary_dir}/<site>.json: estimate, score moments, n, "
        f"{n_folds} fold summaries; no rows.\n")

    fusion, meta, loo = _fuse_at_center([files[f"summary:{site}"] for site in site_table.index],
                                        quick, s_center, say)
    files.update(write_fusion_files(fusion, out))
    say("\n".join(_reading(fusion, meta)))
    seconds = time.perf_counter() - start
    say(f"Files in {out}: summaries/*.json, site_estimates.csv, fused.csv, fused.json, "
        f"heterogeneity.json, forest.png, path.png ({seconds:.0f} s).")
    sys.stdout.flush()
    return DemoResult(site_table=site_table, fusion=fusion, meta=meta, leave_one_out=loo,
                      files=files, seconds=seconds)


def _intro(n_folds: int, x: list[str], quick: bool) -> list[str]:
    lines = ["RAND Health Insurance Experiment (1974-1982): families were randomized to insurance "
             "plans within six sites.",
             f"Effect of free care (no cost sharing) versus any cost-sharing plan on {OUTCOME} = "
             "log(1 + annual medical spending in dollars),",
             f"estimated at each site by DML with the AIPW score (ATE), {n_folds}-fold cross-fitting "
             "clustered on the person, random-forest nuisances;",
             f"{len(x)} baseline covariates: {', '.join(x)}."]
    if quick:
        lines.append(f"Quick mode: {_QUICK_PERSONS} persons per site and small forests; the numbers "
                     "are noisy.")
    return lines + [""]


def _site_estimates(data: pd.DataFrame, x: list[str], n_folds: int, quick: bool,
                    seed: np.random.SeedSequence, summary_dir: Path, files: dict[str, Path]
                    ) -> pd.DataFrame:
    """Each site's fit and summary file (added to ``files``); the table of site estimates."""
    from .fusion.site_dml import SiteDML

    sites = sorted(data["site"].unique())
    rows = []
    for site, site_seed in zip(sites, seed.spawn(len(sites))):
        rows_site = data[data["site"] == site]
        learner_seed, fold_seed = int_seeds(site_seed, 2)
        est = SiteDML(model="irm", n_folds=n_folds, site=site, random_state=fold_seed,
                      **demo_learners(quick, learner_seed))
        est.fit(rows_site, y=OUTCOME, d=TREATMENT, x=x, cluster=CLUSTER)
        # What leaves the site: this file, nothing else.
        path = summary_dir / f"{site}.json"
        est.summary_.to_json(path)
        files[f"summary:{site}"] = path
        ci = est.confint(0.95).iloc[0]
        pscore = est.predictions_["ml_m"]
        rows.append({"site": site, "person-years": est.n_obs_, "persons": est.n_clusters_,
                     "free care %": 100.0 * rows_site[TREATMENT].mean(),
                     "ATE": est.coef_[0], "std err": est.se_[0],
                     "ci lower": ci.iloc[0], "ci upper": ci.iloc[1],
                     "pscore min": float(pscore.min()), "pscore max": float(pscore.max())})
    return pd.DataFrame(rows).set_index("site")


def _fuse_at_center(paths: list[Path], quick: bool, seed: np.random.SeedSequence,
                    say: Callable[..., None]) -> tuple["LateFusion", "MetaAnalysis", pd.DataFrame]:
    """The center's fusion of the summary files it received (it sees only the files)."""
    from .fusion.late_fusion import LateFusion
    from .fusion.summary import SiteSummary

    received = [SiteSummary.from_json(p) for p in paths]
    fusion = LateFusion(inference="bootstrap", n_boot=200 if quick else 1000,
                        random_state=int_seeds(seed, 1)[0]).fit(received)
    say("Step 2, at the center: late fusion (robust empirical Bayes) of the six summaries read "
        "back from disk")
    say(fusion_report(fusion))
    meta = fusion.heterogeneity()
    loo = fusion.leave_one_out()
    say("Leaving out one site at a time (same options, refitted):")
    say(loo.to_string(float_format=lambda v: f"{v:.3g}"))
    say("")
    return fusion, meta, loo


def _reading(fusion: "LateFusion", meta: "MetaAnalysis") -> list[str]:
    """The interpretation printed at the end."""
    center = fusion.center_summary().iloc[0]
    outlying = fusion.method_details_["outlier_prob"][:, 0]
    own_sites = [s for s, prob in zip(fusion.site_names_, outlying) if prob >= 0.5]
    tau = math.sqrt(fusion.method_details_["tau2"][0])
    lo, hi = meta.prediction_interval()
    return [
        "Reading the results",
        f"- Common effect (center): {center['center']:.3f} on the log scale, 95% CI "
        f"[{center['ci lower']:.3f}, {center['ci upper']:.3f}] (bootstrap). Free care multiplies the "
        f"geometric mean of (1 + spending) by about exp({center['center']:.2f}) = "
        f"{math.exp(center['center']):.2f}.",
        f"- Each site's fused estimate is shrunk towards the center by the share of its variance "
        f"that is noise (between-site sd tau = {tau:.3f}, estimated from the normal sites); "
        f"taken for outlying and left at their own estimate: {', '.join(own_sites) or 'none'} "
        f"(largest outlier probability {outlying.max():.2f}).",
        f"- Between-site heterogeneity: Q = {meta.Q:.2f} on {meta.Q_df} df (p = "
        f"{meta.Q_pvalue:.3g}), I^2 = {meta.I2:.0f}%, tau = {math.sqrt(meta.tau2):.3f}; an effect "
        f"at a new site would lie in [{lo:.3f}, {hi:.3f}] (95% prediction interval, REML).",
        "- The site estimates, their intervals and the meta-analysis need only the summaries; no "
        "row left a site.",
    ]


__all__ = ["DemoResult", "demo_learners", "run_demo"]
