"""Summary-level panel of the late-fusion study: designs, one replication, and the tables.

One replication draws every site's estimate from its sampling distribution (with five fold
estimates per site, so that the penalized late fusion can cross-validate its penalty), fits
every method through :class:`~hetmtl.fusion.late_fusion.LateFusion`, and records per site type
(normal, outlying) the squared error, interval coverage and width, and for the center its error,
coverage, width and whether it lies inside its own interval.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..fusion.late_fusion import LambdaSelectionWarning, LateFusion
from ..fusion.summary import FoldSummary, SiteSummary
from ..simulate.summary_level import SummaryDesign, draw_effects, draw_estimates

N_FOLDS = 5
LEVEL = 0.95
# Method label -> LateFusion parameters.
METHODS: dict[str, dict[str, Any]] = {
    "own": {"method": "own"},
    "fixed": {"method": "fixed"},
    "blup_dl": {"method": "blup", "tau2_method": "DL"},
    "blup_reml": {"method": "blup", "tau2_method": "REML"},
    "fusion_cv": {"method": "fusion", "lam": "cv"},
    "robust_eb": {"method": "robust_eb"},
    "gmodel_eb": {"method": "gmodel_eb"},
}
COMPETITORS = ("own", "fixed", "blup_dl", "blup_reml")

# The panel: every design has sizes from 100 to 1000 unless said otherwise.
PANEL: dict[str, dict[str, Any]] = {
    "homog_K5": {"kind": "homogeneous", "n_sites": 5},
    "homog_K8": {"kind": "homogeneous", "n_sites": 8},
    "homog_K20": {"kind": "homogeneous", "n_sites": 20},
    "homog_K8_equal_n": {"kind": "homogeneous", "n_sites": 8, "n_min": 400, "n_max": 400},
    "outliers_small_K10": {"kind": "outliers", "n_sites": 10, "placement": "smallest"},
    "outliers_large_K10": {"kind": "outliers", "n_sites": 10, "placement": "largest"},
    "outliers_small_K20": {"kind": "outliers", "n_sites": 20, "placement": "smallest"},
    "outliers_large_K20": {"kind": "outliers", "n_sites": 20, "placement": "largest"},
    "normal_tau0.5_K10": {"kind": "normal", "n_sites": 10, "tau": 0.5},
    "normal_tau1_K10": {"kind": "normal", "n_sites": 10, "tau": 1.0},
    "normal_tau1.5_K10": {"kind": "normal", "n_sites": 10, "tau": 1.5},
    "clusters_4se_K10": {"kind": "clusters", "n_sites": 10, "gap": 4.0},
}
# Designs the default was never looked at on before it was fixed (other K, tau, outlier sizes,
# placements, shares).
HELD_OUT: dict[str, dict[str, Any]] = {
    "heldout_homog_K30": {"kind": "homogeneous", "n_sites": 30},
    "heldout_normal_tau0.75_K12": {"kind": "normal", "n_sites": 12, "tau": 0.75},
    "heldout_normal_tau2.5_K40": {"kind": "normal", "n_sites": 40, "tau": 2.5},
    "heldout_outliers_2to4se_random_K15": {"kind": "outliers", "n_sites": 15, "shift_low": 2.0,
                                           "shift_high": 4.0, "placement": "random"},
    "heldout_outliers_8to10se_10pct_K30": {"kind": "outliers", "n_sites": 30, "outlier_frac": 0.1,
                                           "shift_low": 8.0, "shift_high": 10.0},
    "heldout_clusters_2.5se_K12": {"kind": "clusters", "n_sites": 12, "gap": 2.5},
}
# A second set, written down before the default's intervals were revised and run once at the end:
# other numbers of sites, size ranges and outlier shares.
HELD_OUT_2: dict[str, dict[str, Any]] = {
    "heldout2_homog_K12_n50to5000": {"kind": "homogeneous", "n_sites": 12, "n_min": 50,
                                     "n_max": 5000},
    "heldout2_normal_tau1.25_K6": {"kind": "normal", "n_sites": 6, "tau": 1.25},
    "heldout2_outliers_30pct_random_K16_n200to800": {
        "kind": "outliers", "n_sites": 16, "outlier_frac": 0.3, "placement": "random",
        "n_min": 200, "n_max": 800},
    "heldout2_outliers_15pct_small_4to8se_K25_n300to3000": {
        "kind": "outliers", "n_sites": 25, "outlier_frac": 0.15, "placement": "smallest",
        "shift_low": 4.0, "shift_high": 8.0, "n_min": 300, "n_max": 3000},
}
DESIGNS = {**PANEL, **HELD_OUT, **HELD_OUT_2}


def site_summaries(design: SummaryDesign, folds: np.ndarray) -> list[SiteSummary]:
    """Site summaries (per-observation variance one) from fold estimates of shape (K, n_folds)."""
    one = np.ones((1, 1))
    out = []
    for k, (n, fold_theta) in enumerate(zip(design.sizes, folds)):
        n_fold = int(round(n / folds.shape[1]))
        fs = tuple(FoldSummary(n_fold, np.array([t]), -one, one) for t in fold_theta)
        out.append(SiteSummary(theta=np.array([fold_theta.mean()]), J=-one, Omega=one,
                               n=float(n_fold * folds.shape[1]), site=f"s{k}", folds=fs))
    return out


def _type_means(values: np.ndarray, outlier: np.ndarray, prefix: str) -> dict[str, float]:
    return {f"{prefix}_normal": float(values[~outlier].mean()),
            f"{prefix}_outlier": float(values[outlier].mean()) if outlier.any() else np.nan}


def method_rows(summaries: list[SiteSummary], theta: np.ndarray, outlier: np.ndarray,
                center_target: float, *, n_boot: int, seed: int,
                methods: list[str] | None = None) -> list[dict]:
    """One row of metrics per method (default every one of :data:`METHODS`) for one data set."""
    rows = []
    for label in methods or METHODS:
        params = METHODS[label]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LambdaSelectionWarning)
            fit = LateFusion(n_boot=n_boot, random_state=seed, level=LEVEL, **params).fit(summaries)
        s = fit.summary()
        est = s["fused estimate"].to_numpy()
        lo, hi = s["fused ci lower"].to_numpy(), s["fused ci upper"].to_numpy()
        c = fit.center_summary().iloc[0]
        row = {"method": label, **_type_means((est - theta) ** 2, outlier, "sq_err"),
               **_type_means((lo <= theta) & (theta <= hi), outlier, "cover"),
               **_type_means(hi - lo, outlier, "width"),
               "center_sq_err": (c["center"] - center_target) ** 2,
               "center_cover": (float(c["ci lower"] <= center_target <= c["ci upper"])
                                if np.isfinite(center_target) else np.nan),
               "center_width": c["ci upper"] - c["ci lower"],
               "center_inside": float(c["ci lower"] <= c["center"] <= c["ci upper"]),
               "sites_inside": float(np.all((lo <= est) & (est <= hi))),
               "all_normal_fused": float(np.all(fit.fused_mask_[~outlier]))}
        rows.append(row)
    return rows


def _ratio(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """Ratio of means of paired per-replication values and its delta-method Monte-Carlo SE."""
    ma, mb = a.mean(), b.mean()
    r = ma / mb
    d = a.to_numpy() / ma - b.to_numpy() / mb
    return r, r * d.std(ddof=1) / np.sqrt(len(d))


def ratio_table(results: pd.DataFrame, method: str = "robust_eb") -> pd.DataFrame:
    """Per design: the method's per-site MSE over the best competitor's (normal and outlying
    sites), over its own DML (outliers) and over the better BLUP (normal sites), with MC SEs."""
    rows = []
    for design, g in results.groupby("design", sort=False):
        wide = {m: gm.set_index("rep").sort_index() for m, gm in g.groupby("method")}
        row = {"design": design}
        for kind in ("normal", "outlier"):
            col = f"sq_err_{kind}"
            if wide[method][col].isna().all():
                continue
            means = {m: wide[m][col].mean() for m in COMPETITORS}
            best = min(means, key=means.get)
            row[f"best_{kind}"] = best
            row[f"ratio_best_{kind}"], row[f"ratio_best_{kind}_mcse"] = _ratio(wide[method][col],
                                                                               wide[best][col])
        if "ratio_best_outlier" in row:
            row["ratio_own_outlier"], row["ratio_own_outlier_mcse"] = _ratio(
                wide[method]["sq_err_outlier"], wide["own"]["sq_err_outlier"])
            blup = min(("blup_dl", "blup_reml"), key=lambda m: wide[m]["sq_err_normal"].mean())
            row["ratio_blup_normal"], row["ratio_blup_normal_mcse"] = _ratio(
                wide[method]["sq_err_normal"], wide[blup]["sq_err_normal"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("design")


def mean_table(results: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Monte-Carlo means and standard errors of ``metrics`` per design and method."""
    g = results.groupby(["design", "method"], sort=False)[metrics]
    mean, sd, n = g.mean(), g.std(ddof=1), g.count()
    out = pd.concat({"mean": mean, "mcse": sd / np.sqrt(n)}, axis=1)
    out.columns = [f"{m}" if s == "mean" else f"{m}_mcse" for s, m in out.columns]
    return out


def coverage_table(results: pd.DataFrame) -> pd.DataFrame:
    """Coverage and width per design and method, for normal and outlying sites and the center."""
    metrics = ["cover_normal", "cover_outlier", "center_cover", "width_normal", "width_outlier",
               "center_width", "center_inside", "sites_inside", "all_normal_fused"]
    return mean_table(results, metrics)


def side_by_side(default_ratios: pd.DataFrame, ratios: pd.DataFrame, coverage: pd.DataFrame,
                 method: str) -> pd.DataFrame:
    """The default's and ``method``'s MSE ratios and coverage per design, next to each other
    (columns ``<metric>_robust_eb`` and ``<metric>_<method>``, MC SEs included)."""
    parts = []
    for name, ratio in (("robust_eb", default_ratios), (method, ratios)):
        cov = coverage.xs(name, level="method")
        cols = [c for c in cov.columns if c.startswith(("cover_", "center_cover"))]
        part = pd.concat([ratio.drop(columns=["best_normal", "best_outlier"], errors="ignore"),
                          cov[cols].reindex(ratio.index)], axis=1)
        parts.append(part.add_suffix(f"_{name}"))
    return pd.concat(parts, axis=1)


COVERAGE_BAND = (0.93, 0.97)


def coverage_cells(results: pd.DataFrame, method: str) -> pd.DataFrame:
    """Each coverage cell (design x normal sites, outlying sites, center) of the default and of
    ``method`` side by side, whether each lies inside :data:`COVERAGE_BAND`, and both methods'
    mean and median (over replications) interval width of the cell."""
    cells = {"normal": ("cover_normal", "width_normal"),
             "outlying": ("cover_outlier", "width_outlier"),
             "center": ("center_cover", "center_width")}
    g = results.groupby(["design", "method"], sort=False)
    rows = []
    for cell, (cover, width) in cells.items():
        mean, median = g[[cover, width]].mean(), g[width].median()
        for design in dict.fromkeys(results["design"]):
            row = {"design": design, "cell": cell}
            for name, tag in (("robust_eb", "default"), (method, "calibrated")):
                row[f"coverage_{tag}"] = mean.loc[(design, name), cover]
                row[f"mean_width_{tag}"] = mean.loc[(design, name), width]
                row[f"median_width_{tag}"] = median.loc[(design, name)]
            if np.isfinite(row["coverage_default"]):
                rows.append(row)
    out = pd.DataFrame(rows).set_index(["design", "cell"])
    for tag in ("default", "calibrated"):
        out[f"inside_{tag}"] = out[f"coverage_{tag}"].between(*COVERAGE_BAND)
    return out


def mse_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per-site MSE by site type and the center's MSE per design and method."""
    return mean_table(results, ["sq_err_normal", "sq_err_outlier", "center_sq_err"])


def _markdown(df: pd.DataFrame, digits: int = 3) -> str:
    df = df.reset_index()
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"

    def fmt(x):
        if isinstance(x, (float, np.floating)):
            return "" if np.isnan(x) else f"{x:.{digits}g}" if abs(x) < 1e-2 else f"{x:.{digits}f}"
        return str(x)

    body = ["| " + " | ".join(fmt(x) for x in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _dot_figure(table: pd.DataFrame, series, xlabel: str, path, reference=None, band=None):
    """One dot per design and series with +-2 Monte-Carlo SE bars, written to ``path``."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    y = np.arange(len(table))
    for col, mark, label in series:
        if col in table:
            ax.errorbar(table[col], y, xerr=2 * table[f"{col}_mcse"], fmt=mark, label=label, ms=4)
    for x in reference or ():
        ax.axvline(x, color="0.5", lw=0.8, ls=":" if x != 1.0 else "-")
    if band is not None:
        ax.axvspan(*band, color="0.9")
    ax.set_yticks(y, table.index, fontsize=7)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_panel(ratios: pd.DataFrame, coverage: pd.DataFrame, out_dir) -> list:
    """Two small figures: MSE ratio to the best competitor, and coverage of the default."""
    return [
        _dot_figure(ratios, [("ratio_best_normal", "o", "normal sites"),
                             ("ratio_best_outlier", "s", "outlying sites")],
                    "per-site MSE of robust_eb / best of own, fixed, BLUP (+-2 MC SE)",
                    out_dir / "mse_ratio.png", reference=(1.0, 1.05)),
        _dot_figure(coverage.xs("robust_eb", level="method"),
                    [("cover_normal", "o", "normal sites"), ("cover_outlier", "s", "outlying sites"),
                     ("center_cover", "^", "center")],
                    "coverage of robust_eb's 95% intervals (+-2 MC SE)", out_dir / "coverage.png",
                    band=(0.93, 0.97)),
    ]


def plot_methods(mse: pd.DataFrame, coverage: pd.DataFrame, out_dir) -> list:
    """Every method side by side: normal sites' MSE over own DML's, and normal sites' and the
    center's coverage, per design."""
    import matplotlib.pyplot as plt

    methods = [m for m in METHODS if m in mse.index.get_level_values("method")]
    designs = list(dict.fromkeys(mse.index.get_level_values("design")))
    y = np.arange(len(designs))
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.3 * len(designs) + 1.5), sharey=True)
    own = mse.xs("own", level="method")["sq_err_normal"].reindex(designs)
    for i, m in enumerate(methods):
        off = (i - len(methods) / 2) * 0.1
        rel = mse.xs(m, level="method")["sq_err_normal"].reindex(designs) / own
        axes[0].plot(rel, y + off, "o", ms=3, label=m)
        cov = coverage.xs(m, level="method").reindex(designs)
        for ax, col in ((axes[1], "cover_normal"), (axes[2], "center_cover")):
            ax.errorbar(cov[col], y + off, xerr=2 * cov[f"{col}_mcse"], fmt="o", ms=3,
                        elinewidth=0.6)
    axes[0].set_xscale("log")
    axes[0].axvline(1.0, color="0.5", lw=0.8)
    axes[0].set_xlabel("per-site MSE / own DML's (normal sites)")
    for ax, what in ((axes[1], "normal sites"), (axes[2], "center")):
        ax.axvspan(0.93, 0.97, color="0.9")
        ax.set_xlabel(f"coverage, {what} (+-2 MC SE)")
    axes[0].set_yticks(y, designs, fontsize=7)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = out_dir / "methods.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [path]


def write_panel_outputs(results: pd.DataFrame, out_dir) -> dict[str, pd.DataFrame]:
    """Write ``ratios`` (and ``ratios_<method>`` for ``fusion_cv`` and ``gmodel_eb`` when they
    ran), ``mse`` and ``coverage`` tables (CSV and markdown) and the figures."""
    tables = {"ratios": ratio_table(results)}
    for extra in ("fusion_cv", *OPTIONAL_METHODS):
        if extra in set(results["method"]):
            tables[f"ratios_{extra}"] = ratio_table(results, extra)
    tables.update(mse=mse_table(results), coverage=coverage_table(results))
    for extra in OPTIONAL_METHODS:
        if f"ratios_{extra}" in tables:
            tables[f"{extra}_vs_default"] = side_by_side(tables["ratios"],
                                                         tables[f"ratios_{extra}"],
                                                         tables["coverage"], extra)
    for extra, name in (("robust_eb_double", "double_bootstrap_cells"),
                        ("robust_eb_bootstrap", "bootstrap_sites_cells")):
        if extra in set(results["method"]):
            tables[name] = coverage_cells(results, extra)
    md = []
    for name, df in tables.items():
        df.to_csv(out_dir / f"{name}.csv")
        md.append(f"## {name}\n\n{_markdown(df)}\n")
    (out_dir / "tables.md").write_text("\n".join(md))
    plot_panel(tables["ratios"], tables["coverage"], out_dir)
    plot_methods(tables["mse"], tables["coverage"], out_dir)
    return tables


BATCHED_METHODS = ("own", "fixed", "blup_dl", "blup_reml", "robust_eb")
# Run on request, after the others (so that they see the same random numbers as without it).
OPTIONAL_METHODS = ("gmodel_eb", "robust_eb_double", "robust_eb_bootstrap")


def batched_metrics(y: np.ndarray, v: np.ndarray, theta: np.ndarray, outlier: np.ndarray,
                    center_target: float, rng: np.random.Generator, n_boot: int = 200,
                    outlying_group: str | None = None,
                    spike: bool = False,
                    model_average: bool = False,
                    gmodel: bool = False,
                    double_bootstrap: bool = False,
                  bootstrap_sites: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Every method of :data:`BATCHED_METHODS` on many data sets at once (rows of ``y``, ``v``):
    per method, per-replication metrics as in :func:`method_rows`.

    The estimators are those ``LateFusion`` calls (``own``, ``fixed``, ``blup_dl``,
    ``blup_reml`` with their Wald and metafor intervals, ``robust_eb`` with its bootstrap ones),
    run batched over the replications instead of one fit at a time. ``outlying_group`` picks
    robust EB's outlying group (None: its default); ``spike`` adds its point-mass group;
    ``model_average`` averages it with pooling by the probability that all sites are equal.
    Robust EB's site intervals are those ``LateFusion`` gives by default: from the posterior
    mixtures (:mod:`hetmtl.fusion.eb_posterior`) where the variant allows it, else the
    bootstrap's.
    ``gmodel`` adds ``gmodel_eb`` (:mod:`hetmtl.fusion.gmodel_eb`, bootstrap intervals) after
    the others, so their numbers are those of a run without it. ``double_bootstrap`` adds
    ``robust_eb_double``, the same estimates and bootstrap errors as ``robust_eb`` with the
    interval levels calibrated by the double bootstrap (:mod:`hetmtl.fusion.eb_calibration`),
    last, so that the others see the random numbers of a run without it. ``bootstrap_sites``
    adds ``robust_eb_bootstrap``: the same estimates and center interval as ``robust_eb``, the
    sites' intervals from the bootstrap (the previous default; no further random numbers). Site
    intervals are half-widths around the estimate, or (lower, upper) pairs.
    """
    from ..fusion.blup import random_effects
    from ..fusion.eb_intervals import robust_eb_errors
    from ..fusion.eb_posterior import posterior_site_intervals
    from ..fusion.robust_eb import robust_eb
    from ..fusion.summary_methods import posterior_sites_blocker

    n_reps = y.shape[0]
    z = 1.959963984540054
    fe = random_effects(y, v, tau2=np.zeros(n_reps))
    fits = {"own": (y, z * np.sqrt(v), fe.mu, z * np.sqrt(fe.mu_var), np.zeros(y.shape, bool))}
    for name, m, t in (("fixed", "REML", np.zeros(n_reps)), ("blup_dl", "DL", None),
                       ("blup_reml", "REML", None)):
        re = random_effects(y, v, method=m, tau2=t)
        fits[name] = (*_re_parts(re, z), np.broadcast_to((re.tau2 == 0)[:, None], y.shape))
    eb = robust_eb(y, v, spike=spike, model_average=model_average,
                   **({} if outlying_group is None else {"outlying_group": outlying_group}))
    errs = robust_eb_errors(eb, y, v, n_boot=n_boot, rng=rng)
    half, center_half = errs.halfwidths(LEVEL)
    blocked = posterior_sites_blocker(eb.outlying_group, spike, model_average, "none")
    sites = half if blocked else posterior_site_intervals(eb, y, v, LEVEL)
    fits["robust_eb"] = (eb.estimate, sites, eb.mu, center_half, eb.outlier_prob < 0.5)
    if gmodel:
        fits["gmodel_eb"] = _gmodel_parts(y, v, rng, n_boot)
    if double_bootstrap:
        from ..fusion.eb_calibration import calibrated_halfwidths

        half, center_half, _ = calibrated_halfwidths(eb, y, v, errs, LEVEL, rng=rng)
        fits["robust_eb_double"] = (eb.estimate, half, eb.mu, center_half, eb.outlier_prob < 0.5)
    if bootstrap_sites:
        fits["robust_eb_bootstrap"] = (eb.estimate, half, eb.mu, center_half, eb.outlier_prob < 0.5)
    has_outlier = outlier.any(axis=1)

    def by_type(values):
        normal = np.nanmean(np.where(outlier, np.nan, values), axis=1)
        out = np.where(outlier, values, 0).sum(1) / np.maximum(outlier.sum(1), 1)
        return normal, np.where(has_outlier, out, np.nan)

    out = {}
    for name, (est, h, center, ch, pooled) in fits.items():
        err2 = (est - theta) ** 2
        if isinstance(h, tuple):
            lower, upper = h
            cover, width = ((lower <= theta) & (theta <= upper)).astype(float), upper - lower
            inside = (lower <= est) & (est <= upper)
        else:
            cover, width, inside = (np.abs(est - theta) <= h).astype(float), 2 * h, h >= 0
        metrics = {}
        for label, values in (("sq_err", err2), ("cover", cover), ("width", width)):
            metrics[f"{label}_normal"], metrics[f"{label}_outlier"] = by_type(values)
        metrics.update(
            center_sq_err=(center - center_target) ** 2 if np.isfinite(center_target)
            else np.full(n_reps, np.nan),
            center_cover=(np.abs(center - center_target) <= ch).astype(float)
            if np.isfinite(center_target) else np.full(n_reps, np.nan),
            center_width=2 * ch, center_inside=(ch >= 0).astype(float),
            sites_inside=np.all(inside, axis=1).astype(float),
            all_normal_fused=np.all(pooled | outlier, axis=1).astype(float))
        out[name] = metrics
    return out


def metric_rows(metrics: dict[str, dict[str, np.ndarray]]) -> list[dict]:
    """Rows of :func:`method_rows`'s form from :func:`batched_metrics`, with ``sub``, the
    replication's index inside its batch."""
    rows = []
    for name, m in metrics.items():
        n = len(next(iter(m.values())))
        rows += [{"method": name, "sub": i, **{k: float(val[i]) for k, val in m.items()}}
                 for i in range(n)]
    return rows


def panel_chunk(config: dict, seed: np.random.SeedSequence) -> list[dict]:
    """Study function: ``config["chunk"]`` replications of a design, batched (config:
    ``design``, ``n_boot``, ``chunk``, optionally robust EB's ``outlying_group``, ``spike`` and
    ``model_average``, ``gmodel`` to add ``gmodel_eb`` and ``double_bootstrap`` to add
    ``robust_eb_double``);
    the batched
    methods only (no penalized fusion)."""
    design = SummaryDesign(**DESIGNS[config["design"]])
    rng = np.random.default_rng(seed)
    theta, outlier = draw_effects(design, int(config["chunk"]), rng)
    y, _ = draw_estimates(design, theta, rng)
    v = np.broadcast_to(1.0 / design.sizes, y.shape).copy()
    target = np.nan if design.kind == "clusters" else design.theta0
    return metric_rows(batched_metrics(y, v, theta, outlier, target, rng,
                                       n_boot=int(config["n_boot"]),
                                       outlying_group=config.get("outlying_group"),
                                       spike=bool(config.get("spike", False)),
                                       model_average=bool(config.get("model_average", False)),
                                       gmodel=bool(config.get("gmodel", False)),
                                       double_bootstrap=bool(config.get("double_bootstrap",
                                                                        False)),
                                       bootstrap_sites=bool(config.get("bootstrap_sites", False))))


def batched_cell(design: SummaryDesign, n_reps: int, rng: np.random.Generator,
                 n_boot: int = 200, bootstrap_sites: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """All replications of one design at once through :func:`batched_metrics` (a fast version of
    the panel for tests)."""
    theta, outlier = draw_effects(design, n_reps, rng)
    y, _ = draw_estimates(design, theta, rng)
    v = np.broadcast_to(1.0 / design.sizes, y.shape).copy()
    return batched_metrics(y, v, theta, outlier, design.theta0, rng, n_boot=n_boot,
                           bootstrap_sites=bootstrap_sites)


def _gmodel_parts(y, v, rng, n_boot: int):
    from ..fusion.gmodel_eb import gmodel_eb
    from ..fusion.gmodel_intervals import gmodel_errors

    fit = gmodel_eb(y, v)
    half, center_half = gmodel_errors(fit, y, v, n_boot=n_boot, rng=rng).halfwidths(LEVEL)
    shrunk = np.abs(fit.estimate - fit.mu[:, None]) <= 0.5 * np.abs(y - fit.mu[:, None])
    return fit.estimate, half, fit.mu, center_half, shrunk


def _re_parts(fit, z: float):
    return fit.blup, z * np.sqrt(fit.blup_var), fit.mu, z * np.sqrt(fit.mu_var)
