"""What the fusion objects print: reports of late fusion, meta-analyses, site fits and grid sums.

Each function returns a :class:`~hetmtl._util.display.Report`; the classes' ``print``, ``repr``
and notebook display come from it (:class:`~hetmtl._util.display.ReportDisplay`), and the
``hetmtl fuse`` command prints :func:`late_fusion_report` as well, so the two always agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._util.display import Report, Section, format_number

if TYPE_CHECKING:  # pragma: no cover
    from .grid_summary import GridSummary
    from .heterogeneity import MetaAnalysis
    from .late_fusion import LateFusion
    from .nuisance_fusion import FusedNuisance, NuisanceFusion
    from .site_dml import SiteDML
    from .summary import SiteSummary

__all__ = ["grid_summary_report", "late_fusion_report", "meta_analysis_report",
           "nuisance_fusion_report", "fused_nuisance_report", "site_dml_report",
           "site_summary_report"]


# What "fused" in the per-site table means for each method.
_FUSED_MEANING = {
    "robust_eb": "in the normal group (outlier probability below 1/2), shrunk toward the center",
    "gmodel_eb": "shrunk at least half of the way to the center",
    "blup": "shrunk all the way to the center (tau^2 = 0)",
    "fixed": "that share the center's value (all, when pooling)",
    "own": "that share the center's value (none: each keeps its own estimate)",
    "fusion": "that share the center's value exactly",
}


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _pct(level: float) -> str:
    return f"{100 * level:g}%"


def _not_fitted(est: Any, what: str) -> Report:
    settings = {name: value for name, value in est.get_params(deep=False).items()
                if value is not None and not hasattr(value, "fit")}
    return Report(f"{type(est).__name__} (not fitted: call {what} first)",
                  [Section("Settings", values=settings)], fitted=False)


# --------------------------------------------------------------------------- meta-analysis
def heterogeneity_lines(meta: "MetaAnalysis") -> list[str]:
    """Q, I^2, H^2, tau^2 and the prediction interval of a meta-analysis, as text lines."""
    reml, dl = meta.random_reml, meta.random_dl
    lo, hi = meta.prediction_interval()
    return [
        f"Heterogeneity: Q = {format_number(meta.Q)} on {meta.Q_df} df "
        f"(p = {format_number(meta.Q_pvalue)}); REML tau^2 = {format_number(reml.tau2)} "
        f"(tau = {format_number(reml.tau)}), I^2 = {reml.I2:.1f}%, H^2 = {format_number(reml.H2)}; "
        f"DerSimonian-Laird tau^2 = {format_number(dl.tau2)}, I^2 = {dl.I2:.1f}%, "
        f"H^2 = {format_number(dl.H2)}",
        f"{_pct(meta.level)} prediction interval for the effect at a new site "
        f"({meta.method}): [{format_number(lo)}, {format_number(hi)}]",
    ]


def meta_analysis_report(meta: "MetaAnalysis") -> Report:
    """Pooled estimates, heterogeneity statistics and per-site weights of a meta-analysis.

    Parameters
    ----------
    meta : MetaAnalysis
        A result of :func:`~hetmtl.fusion.heterogeneity.meta_analysis`.

    Returns
    -------
    Report
    """
    r = meta.random
    title = (f"MetaAnalysis(k={meta.k}, fixed={meta.fixed.estimate:.4g} (se {meta.fixed.se:.3g}), "
             f"random {meta.method}={r.estimate:.4g} (se {r.se:.3g}), tau2={r.tau2:.4g}, "
             f"I2={r.I2:.1f}%, Q={meta.Q:.4g} on {meta.Q_df} df)")
    sections = [
        Section(f"Pooled estimates ({_pct(meta.level)} intervals)", table=meta.summary()),
        Section("Heterogeneity (pi: prediction interval for a new site)",
                table=meta.heterogeneity_table(), lines=heterogeneity_lines(meta)),
        Section("Sites", table=meta.site_table()),
    ]
    if meta.notes:
        sections.append(Section("Notes", lines=list(meta.notes)))
    return Report(title, sections)


# --------------------------------------------------------------------------- late fusion
# Up to this many sites the report of a robust EB fit points to the Knapp-Hartung BLUP.
FEW_SITES = 4
# Where a late fusion's intervals come from, by FusedInference.method. The empirical-Bayes
# intervals are quantiles of a bootstrap or a posterior, not estimate +- z SE: no standard errors.
_INTERVAL_SOURCES = {
    "wald": "normal approximation (analytic standard errors)",
    "bootstrap": "bootstrap of the penalized fusion",
    "conditional": "conditional on the fused groups",
    "eb_bootstrap": "parametric bootstrap of the whole procedure (std err not defined)",
    "eb_posterior": "center: parametric bootstrap of the whole procedure (std err not defined)",
}
def late_fusion_report(fit: "LateFusion") -> Report:
    """The per-site table, the center and the heterogeneity of a late fusion.

    The same text is printed by ``print(fit)`` and by the ``hetmtl fuse`` command.

    Parameters
    ----------
    fit : LateFusion
        A late fusion, fitted or not.

    Returns
    -------
    Report
    """
    if not hasattr(fit, "theta_"):
        return _not_fitted(fit, "fit(summaries)")
    K = len(fit.site_names_)
    pct = _pct(fit.level)
    method = fit.method_ if K > 1 else f"{fit.method_} (a single site: nothing to fuse)"
    inference = "none" if fit.inference_ is None else \
        _INTERVAL_SOURCES.get(fit.inference_.method, fit.inference_.method)
    if getattr(fit.inference_, "df", None) is not None:
        inference = "analytic standard errors, t quantiles (Knapp-Hartung)"
    settings: dict[str, Any] = {"method": method, "sites fused with the center":
                                f"{int(fit.fused_mask_.sum())} of {K}", "inference": inference}
    if fit.method_ == "fusion":
        settings.update({"lambda": f"{format_number(fit.lambda_)} ({fit.lambda_rule_})",
                         "lambda_max": fit.lambda_max_, "weight": fit.weight,
                         "penalty": fit.penalty})
    elif fit.method_ == "blup":
        settings["tau2 method"] = fit.tau2_method
        if fit.test == "knha":
            settings["test"] = f"knha (Knapp-Hartung, t on {K - 1} df)"
    if getattr(fit, "site_intervals_", None):
        settings["site intervals"] = {"posterior": "posterior (tau and center integrated out)",
                                      "bootstrap": "bootstrap"}[fit.site_intervals_]
    tau2 = fit.method_details_.get("tau2") if fit.method_details_ else None
    if tau2 is not None and fit.method_ != "fusion":
        # Not the meta-analysis' REML tau^2 below: robust EB's is that of its normal group.
        label = {"robust_eb": "tau^2 (normal group)", "blup": f"tau^2 ({fit.tau2_method})"}.get(fit.method_, "tau^2")
        settings[label] = ", ".join(format_number(t) for t in np.atleast_1d(tau2))
    eps = fit.method_details_.get("eps") if fit.method_details_ else None
    if eps is not None:
        settings["outlier share"] = ", ".join(format_number(e) for e in np.atleast_1d(eps))
    title = (f"Late fusion of {_plural(K, 'site summary', 'site summaries')}; coefficient(s): "
             f"{', '.join(fit.coef_names_)}")
    sections = [
        Section("Settings", values=settings),
        Section(f"Per-site estimates ({pct} intervals). 'estimate' is the site's own DML estimate; "
                f"'fused' marks sites {_FUSED_MEANING.get(fit.method_, 'pooled with the center')};"
                "\n'weight %' is the site's share in the inverse-variance pool.", table=fit.summary()),
        Section(f"Center ({pct} interval):", table=fit.center_summary()),
    ]
    if fit.method_ == "robust_eb" and 2 <= K <= FEW_SITES:
        sections.append(Section("Notes", lines=[
            f"With {K} sites robust EB cannot tell an outlying site from heterogeneity: its center "
            "interval is conservative.",
            "In simulations with 3-4 sites it covered 0.99-1.00 at 1.2-1.8x the width of Knapp-Hartung "
            "intervals (method='blup', test='knha'), which covered 0.92-0.97 (docs/studies/late_fusion)."]))
    if K >= 2:
        for j, coef in enumerate(fit.coef_names_):
            meta = fit.heterogeneity(coef=j)
            sections.append(Section(
                f"Meta-analysis of the site estimates of {coef} (inverse-variance weights):",
                table=meta.summary(), lines=heterogeneity_lines(meta)))
    return Report(title, sections)


# --------------------------------------------------------------------------- one site
def site_summary_report(summary: "SiteSummary") -> Report:
    """What a site summary holds: estimate, standard errors, size and fold summaries.

    Parameters
    ----------
    summary : SiteSummary

    Returns
    -------
    Report
    """
    se = np.sqrt(np.diag(summary.cov))
    table = pd.DataFrame({"estimate": summary.theta, "std err": se},
                         index=pd.Index(list(summary.coef_names), name="coef"))
    values = {"model": summary.model, "n": summary.n, "fold summaries": len(summary.folds)}
    if summary.withheld_fold_rows:
        values["withheld folds (rows)"] = ", ".join(str(r) for r in summary.withheld_fold_rows)
    return Report(f"SiteSummary of site {summary.site!r}",
                  [Section(values=values), Section("Estimates", table=table)])


def site_dml_report(est: "SiteDML") -> Report:
    """The result table of a site's DML fit with its sample-splitting settings.

    Parameters
    ----------
    est : SiteDML
        Fitted or not.

    Returns
    -------
    Report
    """
    if not hasattr(est, "coef_"):
        return _not_fitted(est, "fit(data, y=..., d=..., x=...)")
    values: dict[str, Any] = {"model": est.model, "rows": est.n_obs_, "folds": est.n_folds_,
                              "repetitions": est.n_rep_}
    if getattr(est, "n_clusters_", None) is not None:
        values["clusters"] = est.n_clusters_
    # Fits saved before nuisance_sources_ existed name their learners.
    sources = getattr(est, "nuisance_sources_", None) or {
        role: type(learner).__name__ for role, learner in est.learners_.items()}
    values["nuisances"] = ", ".join(f"{role}: {source}" for role, source in sources.items())
    return Report(f"SiteDML of site {est.site!r} ({est.model})",
                  [Section(values=values), Section("Estimates (95% intervals)", table=est.summary())])


# --------------------------------------------------------------------------- nuisance fusion
def _released_table(summary: "GridSummary") -> pd.DataFrame:
    rows = {}
    for role, sums in summary.nuisances.items():
        released = np.asarray(sums.released).sum(axis=1)
        rows[role] = {"rows per fold": ", ".join(str(int(r)) for r in sums.n_rows),
                      "binary": bool(sums.binary),
                      **{f"released (h{b})": int(released[b]) for b in range(released.size)}}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("nuisance")


def _grid_values(grid: Any) -> dict[str, Any]:
    return {"grid": f"{grid.n_points} points in {grid.dim} dimension(s) "
                    f"({' x '.join(str(s) for s in grid.shape)})",
            "kernel": f"{grid.kernel}, local {grid.fit}"}


def grid_summary_report(summary: "GridSummary") -> Report:
    """A site's grid summary: grid, bandwidths, threshold and the grid points released.

    Parameters
    ----------
    summary : GridSummary

    Returns
    -------
    Report
    """
    values = {**_grid_values(summary.grid), "bandwidths": len(summary.bandwidths),
              "folds": summary.n_folds, "threshold": summary.threshold,
              "differential privacy": "yes" if summary.privacy else "no"}
    bandwidths = pd.DataFrame(np.atleast_2d(summary.bandwidths),
                              columns=[f"x{i}" for i in range(summary.grid.dim)])
    bandwidths.index = pd.Index([f"h{b}" for b in range(len(bandwidths))], name="bandwidth")
    return Report(f"GridSummary of site {summary.site!r}",
                  [Section(values=values),
                   Section(f"Grid points released (of {summary.grid.n_points}) per nuisance and "
                           "bandwidth", table=_released_table(summary)),
                   Section("Bandwidths", table=bandwidths)])


def nuisance_fusion_report(fit: "NuisanceFusion") -> Report:
    """The chosen bandwidth and penalty of every fused nuisance.

    Parameters
    ----------
    fit : NuisanceFusion
        Fitted or not.

    Returns
    -------
    Report
    """
    if not hasattr(fit, "sites_"):
        settings = {"lam": fit.lam, "penalty": fit.penalty, "n_lambda": fit.n_lambda,
                    "lambda_ratio": fit.lambda_ratio}
        return Report("NuisanceFusion (not fitted: call fit(grid_summaries) first)",
                      [Section("Settings", values=settings)], fitted=False)
    rows = {}
    for role in fit.bandwidth_:
        K, F, G = fit.values_[role].shape
        spread = np.sqrt(np.mean((fit.values_[role] - fit.center_[role][None]) ** 2, axis=(1, 2)))
        rows[role] = {"bandwidth": ", ".join(format_number(h) for h in fit.bandwidth_[role]),
                      "lambda": fit.lam_[role],
                      "lambda / lambda_max": (np.nan if fit.lambda_fraction_[role] is None
                                              else fit.lambda_fraction_[role]),
                      "sites at the center": int(np.sum(spread <= 1e-9 * (1 + np.abs(
                          fit.center_[role]).max()))),
                      "binary": bool(fit.binary_[role])}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("nuisance")
    values = {"sites": ", ".join(fit.sites_), **_grid_values(fit.grid_), "folds": fit.n_folds_,
              "penalty": fit.penalty, "lam": fit.lam}
    return Report(f"NuisanceFusion of {_plural(len(fit.sites_), 'site')}",
                  [Section(values=values), Section("Fused nuisances", table=table)])


def fused_nuisance_report(result: "FusedNuisance") -> Report:
    """What the center sends a site: its fused nuisance functions on the grid, per fold.

    Parameters
    ----------
    result : FusedNuisance

    Returns
    -------
    Report
    """
    table = pd.DataFrame({role: {"folds": int(v.shape[0]), "min": float(np.min(v)),
                                 "max": float(np.max(v)), "binary": bool(result.binary.get(role, False))}
                          for role, v in result.values.items()}).T.rename_axis("nuisance")
    table = table.astype({"folds": int, "min": float, "max": float, "binary": bool})
    return Report(f"FusedNuisance for site {result.site!r}",
                  [Section(values=_grid_values(result.grid)),
                   Section("Fused functions on the grid", table=table)])
