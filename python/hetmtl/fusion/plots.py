"""Figures of a late-fusion fit: forest plot and fusion path (matplotlib)."""

from __future__ import annotations

import numpy as np


def _coef_index(fit, coef) -> int:
    if isinstance(coef, str):
        if coef not in fit.coef_names_:
            raise ValueError(f"coef: unknown coefficient {coef!r}; known: {fit.coef_names_}")
        return fit.coef_names_.index(coef)
    j = int(coef)
    if not 0 <= j < len(fit.coef_names_):
        raise ValueError(f"coef: index {j} out of range for {len(fit.coef_names_)} coefficient(s)")
    return j


def _new_axes(ax, height: float):
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    return plt.subplots(figsize=(7.0, height))


def forest_plot(fit, coef=0, ax=None, level=None):
    """Draw each site's own estimate (open) and fused estimate (filled) with intervals.

    Returns the matplotlib Figure.
    """
    j = _coef_index(fit, coef)
    level = fit.level if level is None else level
    table = fit.summary(level)
    if len(fit.coef_names_) > 1:
        table = table.xs(fit.coef_names_[j], level="coef")
    K = len(fit.site_names_)
    fig, ax = _new_axes(ax, 1.2 + 0.38 * (K + 2))
    y = np.arange(K)[::-1] + 2.0
    ax.errorbar(table["estimate"], y + 0.15,
                xerr=[table["estimate"] - table["ci lower"], table["ci upper"] - table["estimate"]],
                fmt="o", mfc="white", color="0.35", capsize=2, label="site estimate")
    fused_err = None
    if np.all(np.isfinite(table["fused ci lower"])):
        fused_err = [np.maximum(table["fused estimate"] - table["fused ci lower"], 0),
                     np.maximum(table["fused ci upper"] - table["fused estimate"], 0)]
    colors = np.where(table["fused"], "C0", "C3")
    for yi, xi, ci, err in zip(y - 0.15, table["fused estimate"], colors,
                               zip(*fused_err) if fused_err else [None] * K):
        ax.errorbar([xi], [yi], xerr=None if err is None else [[err[0]], [err[1]]], fmt="s",
                    color=ci, capsize=2)
    center = fit.center_summary(level).iloc[j]
    ax.axvline(center["center"], color="C0", lw=0.8, ls="--")
    ax.errorbar([center["center"]], [0.8],
                xerr=None if not np.isfinite(center["ci lower"]) else
                [[center["center"] - center["ci lower"]], [center["ci upper"] - center["center"]]],
                fmt="D", color="C0", capsize=3)
    ax.set_yticks(list(y) + [0.8])
    ax.set_yticklabels(list(fit.site_names_) + ["center"])
    ax.set_xlabel(f"{fit.coef_names_[j]} ({int(round(100 * level))}% intervals)")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", mfc="white", color="0.35", ls="", label="site estimate"),
               Line2D([], [], marker="s", color="C0", ls="", label="fused (with center)"),
               Line2D([], [], marker="s", color="C3", ls="", label="fused (own value)"),
               Line2D([], [], marker="D", color="C0", ls="", label="center")]
    # Below the axes: inside, "best" still covers a site's interval when sites span the range.
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4,
              fontsize="small", frameon=False, handletextpad=0.3, columnspacing=1.0)
    method = getattr(fit, "method_", "fusion")
    ax.set_title(f"Late fusion, lambda = {fit.lambda_:.3g}" if method == "fusion"
                 else f"Late fusion, method {method!r}")
    fig.tight_layout()
    return fig


def path_plot(fit, coef=0, ax=None):
    """Draw each site's fused estimate against lambda (log scale), marking the chosen lambda."""
    j = _coef_index(fit, coef)
    fig, ax = _new_axes(ax, 4.5)
    path = fit.path_
    lam = path.lambdas
    for k, name in enumerate(fit.site_names_):
        ax.plot(lam, path.theta[:, k, j], lw=1.1, label=name if len(fit.site_names_) <= 12 else None)
    ax.plot(lam, path.center[:, j], color="black", lw=2.0, ls="--", label="center")
    if fit.lambda_ > 0:
        ax.axvline(fit.lambda_, color="0.4", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("lambda")
    ax.set_ylabel(fit.coef_names_[j])
    ax.set_title("Fusion path (chosen lambda dotted)")
    ax.legend(fontsize="small", frameon=False, ncol=2)
    fig.tight_layout()
    return fig
