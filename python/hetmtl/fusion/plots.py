"""Figures of a late-fusion fit, ready for a paper: forest plot and fusion path (matplotlib).

Figures this module creates save at :data:`PRINT_DPI` unless the caller (or the ``savefig.dpi``
setting) asks for another resolution; given an ``ax``, they draw into it and leave the figure as
it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._util.display import format_number

__all__ = ["FOREST_WIDTH", "PRINT_DPI", "forest_height", "forest_plot", "path_plot"]

PRINT_DPI = 300
# Left edges of the forest plot's text columns, in points right of the plot (fixed widths, so
# that tight_layout can make room for them whatever the figure's size).
_TEXT_COLUMNS = (8, 112, 216)
_SITE, _WITH_CENTER, _OWN_VALUE, _CENTER, _RANDOM = "0.35", "C0", "C3", "C0", "0.15"


def _print_figure_class():
    from matplotlib.figure import Figure

    class PrintFigure(Figure):
        """A Figure whose ``savefig`` defaults to :data:`PRINT_DPI` (notebooks show it as usual)."""

        def savefig(self, fname: Any, *args: Any, **kwargs: Any) -> None:
            import matplotlib as mpl

            if kwargs.get("dpi") is None and mpl.rcParams["savefig.dpi"] == "figure":
                kwargs["dpi"] = PRINT_DPI
            super().savefig(fname, *args, **kwargs)

    return PrintFigure


FOREST_WIDTH = 8.5


def forest_height(n_sites: int) -> float:
    """Height in inches of a forest plot of ``n_sites`` sites (the width is :data:`FOREST_WIDTH`)."""
    return 1.5 + 0.32 * (n_sites + 3)


def _coef_index(fit, coef) -> int:
    if isinstance(coef, str):
        if coef not in fit.coef_names_:
            raise ValueError(f"coef: unknown coefficient {coef!r}; known: {fit.coef_names_}")
        return fit.coef_names_.index(coef)
    j = int(coef)
    if not 0 <= j < len(fit.coef_names_):
        raise ValueError(f"coef: index {j} out of range for {len(fit.coef_names_)} coefficient(s)")
    return j


def _new_axes(ax, width: float, height: float):
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    return plt.subplots(figsize=(width, height), FigureClass=_print_figure_class())


def _interval_text(estimate: float, lower: float, upper: float) -> str:
    if not (np.isfinite(lower) and np.isfinite(upper)):
        return format_number(estimate)
    return f"{format_number(estimate, 3)} [{format_number(lower, 3)}, {format_number(upper, 3)}]"


def _errorbar(ax, x, y, lower, upper, **style) -> Any:
    x, lower, upper = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (x, lower, upper))
    err = None
    if np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)):
        err = [np.maximum(x - lower, 0.0), np.maximum(upper - x, 0.0)]
    return ax.errorbar(x, y, xerr=err, capsize=2, ls="", **style)


def _diamond(ax, estimate: float, lower: float, upper: float, y: float) -> Any:
    from matplotlib.patches import Polygon

    half = 0.32
    patch = Polygon([(lower, y), (estimate, y + half), (upper, y), (estimate, y - half)],
                    closed=True, facecolor=_RANDOM, edgecolor=_RANDOM, label="random effects (REML)")
    ax.add_patch(patch)
    return patch


def _text_columns(ax, rows: list[tuple[float, tuple[str, str, str]]], header: tuple[str, str, str]):
    """Right of the plot: one line per row in each column, aligned with the row's y."""
    transform = ax.get_yaxis_transform()  # x in axes units, y in data units
    top = max(y for y, _ in rows) + 0.9
    for y, cells, weight in [(top, header, "bold")] + [(y, cells, "normal") for y, cells in rows]:
        for offset, cell in zip(_TEXT_COLUMNS, cells):
            if cell:
                ax.annotate(cell, xy=(1.0, y), xycoords=transform, xytext=(offset, 0),
                            textcoords="offset points", fontsize="small", fontweight=weight,
                            va="center", ha="left", annotation_clip=False)


def forest_plot(fit, coef: int | str = 0, ax=None, level: float | None = None, null: float | None = 0.0):
    """Forest plot of a late fusion: sites, center and random-effects diamond, with text columns.

    Each site shows its own DML estimate (open circle) and its fused estimate (square: blue when
    it shares the center's value, red when it keeps its own), with intervals. Below the sites
    come the fit's center and the random-effects (REML) pooled estimate as a diamond spanning its
    interval. Right of the plot, text columns give each row's own estimate with its interval,
    the fused estimate with its interval, and the site's weight in the inverse-variance pool. A
    vertical line marks the null value. The legend lists only the kinds of marks drawn.

    Parameters
    ----------
    fit : LateFusion
        A fitted late fusion.
    coef : int or str, default 0
        Coefficient to draw (index or name).
    ax : matplotlib Axes, optional
        Where to draw; by default a new figure (saved at :data:`PRINT_DPI`).
    level : float, optional
        Confidence level of the intervals (default: the fit's level).
    null : float or None, default 0.0
        Where to draw the line of no effect; None for no line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    j = _coef_index(fit, coef)
    level = fit.level if level is None else level
    table = fit.summary(level)
    if len(fit.coef_names_) > 1:
        table = table.xs(fit.coef_names_[j], level="coef")
    K = len(fit.site_names_)
    fig, ax = _new_axes(ax, FOREST_WIDTH, forest_height(K))
    y = np.arange(K)[::-1] + 2.0
    handles = [_errorbar(ax, table["estimate"], y + 0.15, table["ci lower"], table["ci upper"],
                         fmt="o", mfc="white", color=_SITE, label="site estimate")]
    fused = table["fused"].to_numpy(dtype=bool)
    for mask, color, label in ((fused, _WITH_CENTER, "fused (with center)"),
                               (~fused, _OWN_VALUE, "fused (own value)")):
        if mask.any():  # a legend entry only for a group that is present
            rows = table[mask]
            handles.append(_errorbar(ax, rows["fused estimate"], y[mask] - 0.15,
                                     rows["fused ci lower"], rows["fused ci upper"], fmt="s",
                                     color=color, label=label))
    center = fit.center_summary(level).iloc[j]
    handles.append(_errorbar(ax, center["center"], [1.0], center["ci lower"], center["ci upper"],
                             fmt="D", color=_CENTER, label=f"center ({fit.method_})"))
    ax.axvline(center["center"], color=_CENTER, lw=0.7, ls="--", zorder=0)
    text_rows = [(yk, (_interval_text(r["estimate"], r["ci lower"], r["ci upper"]),
                       _interval_text(r["fused estimate"], r["fused ci lower"], r["fused ci upper"]),
                       f"{r['weight %']:.1f}%"))
                 for yk, (_, r) in zip(y, table.iterrows())]
    text_rows.append((1.0, ("", _interval_text(center["center"], center["ci lower"],
                                               center["ci upper"]), "100%")))
    labels = [*fit.site_names_, f"center ({fit.method_})"]
    ticks = [*y, 1.0]
    if K >= 2:
        meta = fit.heterogeneity(coef=j, level=level).random_reml
        lo, hi = meta.confint(level)
        handles.append(_diamond(ax, meta.estimate, lo, hi, 0.0))
        text_rows.append((0.0, (_interval_text(meta.estimate, lo, hi), "", "")))
        labels.append(f"random effects (I\u00b2 = {meta.I2:.0f}%)")
        ticks.append(0.0)
    if null is not None:
        ax.axvline(null, color="black", lw=0.8, zorder=0)
    pct = f"{100 * level:g}%"
    _text_columns(ax, text_rows, (f"own [{pct} CI]", f"fused [{pct} CI]", "weight"))
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels)
    ax.set_ylim(-0.7, K + 2.6)
    ax.set_xlabel(f"{fit.coef_names_[j]} ({pct} intervals)")
    # Below the axes: inside, any corner may cover a site's interval when sites span the range.
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14 - 0.4 / (K + 3)),
              ncol=min(len(handles), 3), fontsize="small", frameon=False, handletextpad=0.3,
              columnspacing=1.0)
    ax.set_title(f"Late fusion, lambda = {fit.lambda_:.3g}" if fit.method_ == "fusion"
                 else f"Late fusion, method {fit.method_!r}", loc="left")
    fig.tight_layout()
    return fig


def path_plot(fit, coef: int | str = 0, ax=None):
    """Fusion path: each site's fused estimate against lambda (log scale), with the center.

    The center is a wide pale band drawn beneath the sites, so a site fused with the center stays
    visible on it; the chosen lambda (``method="fusion"``) is dotted.

    Parameters
    ----------
    fit : LateFusion
        The fit whose lambda path (``path_``) is drawn.
    coef : int or str, default 0
        Which coefficient: its position or its name.
    ax : matplotlib Axes, optional
        Axes to draw into; None makes a figure of its own, saved at :data:`PRINT_DPI`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    j = _coef_index(fit, coef)
    fig, ax = _new_axes(ax, 6.5, 4.5)
    path = fit.path_
    lam = path.lambdas
    K = len(fit.site_names_)
    colors = _site_colors(K)
    ax.plot(lam, path.center[:, j], color="0.55", lw=6.0, alpha=0.45, solid_capstyle="butt",
            zorder=1, label="center")
    for k, name in enumerate(fit.site_names_):
        ax.plot(lam, path.theta[:, k, j], lw=1.2, color=colors[k], zorder=2,
                label=name if K <= 12 else None)
    if np.isfinite(fit.lambda_) and fit.lambda_ > 0:
        ax.axvline(fit.lambda_, color="0.3", lw=0.8, ls=":", label="chosen lambda")
    ax.set_xscale("log")
    ax.set_xlabel("lambda")
    ax.set_ylabel(fit.coef_names_[j])
    title = "Fusion path: sites join the center as lambda grows"
    if fit.method_ != "fusion":  # the path is computed for every fit, but only drawn from here
        title += f"\n(penalized fusion, for reference: this fit used method={fit.method_!r})"
    ax.set_title(title, loc="left")
    ax.legend(fontsize="small", frameon=False, ncol=2 if K > 6 else 1, loc="best")
    fig.tight_layout()
    return fig


def _site_colors(K: int) -> list:
    import matplotlib as mpl

    cmap = mpl.colormaps["tab10" if K <= 10 else "tab20"]
    return [cmap(k % cmap.N) for k in range(K)]

