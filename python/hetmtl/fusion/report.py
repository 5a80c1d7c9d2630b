"""Reports of a fitted :class:`~hetmtl.fusion.late_fusion.LateFusion`: readable text and files.

:func:`fusion_report` is the text the ``hetmtl fuse`` command prints; :func:`write_fusion_files`
writes the tables, the JSON record and the plots. Both use only LateFusion's public methods.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._util.io import atomic_write_bytes, atomic_write_json

if TYPE_CHECKING:  # pragma: no cover
    from .late_fusion import LateFusion

__all__ = ["format_table", "fusion_report", "jsonable", "write_fusion_files"]


def _fmt(value: float) -> str:
    return f"{value:.4g}" if np.isfinite(value) else "nan"


def format_table(df: pd.DataFrame) -> str:
    """A table as text, numbers to four significant digits."""
    return df.to_string(float_format=_fmt)


def fusion_report(fit: "LateFusion") -> str:
    """Readable text of a fitted :class:`~hetmtl.fusion.late_fusion.LateFusion`.

    The per-site table (own DML estimate and fused estimate with intervals), the center, and for
    every coefficient the fixed- and random-effects meta-analysis of the site estimates with
    Cochran's Q, I^2, tau^2 and the prediction interval for a new site.

    Parameters
    ----------
    fit : LateFusion
        A fitted fusion.

    Returns
    -------
    str
    """
    K = len(fit.site_names_)
    pct = f"{100 * fit.level:g}%"
    lines = [f"Late fusion of {K} site {'summary' if K == 1 else 'summaries'}; "
             f"coefficient(s): {', '.join(fit.coef_names_)}"]
    if fit.method_ == "fusion":
        lines.append(f"lambda = {_fmt(fit.lambda_)} ({fit.lambda_rule_}); lambda_max = "
                     f"{_fmt(fit.lambda_max_)}; {int(fit.fused_mask_.sum())} of {K} sites fused "
                     f"with the center; weight = {fit.weight!r}, penalty = {fit.penalty!r}, "
                     f"inference = {fit.inference!r}")
    else:
        tau2 = fit.method_details_.get("tau2")
        lines.append(f"method = {fit.method_!r}; {int(fit.fused_mask_.sum())} of {K} sites pooled "
                     "with the others" + ("" if tau2 is None else "; tau^2 = " + ", ".join(
                         _fmt(t) for t in np.atleast_1d(tau2))) + f"; inference = {fit.inference!r}")
    lines.append("")
    lines += [f"Per-site estimates ({pct} intervals). 'estimate' is the site's own DML estimate; "
              "'fused' marks sites",
              "that share the center's value; 'weight %' is the site's share in the inverse-variance "
              "pool.", format_table(fit.summary()), ""]
    lines += [f"Center ({pct} interval):", format_table(fit.center_summary()), ""]
    for j, coef in enumerate(fit.coef_names_):
        if K < 2:
            break
        meta = fit.heterogeneity(coef=j)
        lines += [f"Meta-analysis of the site estimates of {coef} (inverse-variance weights):",
                  format_table(meta.summary())]
        lo, hi = meta.prediction_interval()
        lines.append(
            f"Heterogeneity: Q = {_fmt(meta.Q)} on {meta.Q_df} df (p = {_fmt(meta.Q_pvalue)}); "
            f"REML tau^2 = {_fmt(meta.random_reml.tau2)} (tau = {_fmt(meta.random_reml.tau)}), "
            f"I^2 = {meta.random_reml.I2:.1f}%, H^2 = {_fmt(meta.random_reml.H2)}; "
            f"DerSimonian-Laird tau^2 = {_fmt(meta.random_dl.tau2)}, I^2 = {meta.random_dl.I2:.1f}%")
        lines.append(f"{pct} prediction interval for the effect at a new site (REML): "
                     f"[{_fmt(lo)}, {_fmt(hi)}]")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def jsonable(obj: Any) -> Any:
    """Plain-JSON copy of ``obj``: NaN and infinities become None, numpy scalars Python ones."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    return repr(obj)


def _save_figure(draw, n_panels: int, height: float, path: Path) -> None:
    # A Figure with an Agg canvas of its own: nothing touches pyplot's global state or backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, height * n_panels))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_panels, 1, squeeze=False)[:, 0]
    for j, ax in enumerate(axes):
        draw(j, ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)
    atomic_write_bytes(path, buf.getvalue())


def write_fusion_files(fit: "LateFusion", out_dir: str | Path) -> dict[str, Path]:
    """Write the results of a fitted fusion into ``out_dir`` (created if needed).

    Files: ``fused.csv`` (:meth:`LateFusion.summary`), ``fused.json``
    (:meth:`LateFusion.to_dict`, NaN written as null), ``heterogeneity.json`` (the meta-analysis
    of each coefficient, when there are at least two sites), ``forest.png`` and ``path.png`` (one
    panel per coefficient).

    Returns
    -------
    dict
        File role -> path written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"csv": out / "fused.csv", "json": out / "fused.json"}
    atomic_write_bytes(files["csv"], fit.summary().reset_index().to_csv(index=False).encode("utf-8"))
    atomic_write_json(files["json"], jsonable(fit.to_dict()))
    if len(fit.site_names_) >= 2:
        files["heterogeneity"] = out / "heterogeneity.json"
        atomic_write_json(files["heterogeneity"], jsonable(
            {coef: fit.heterogeneity(coef=j).to_dict() for j, coef in enumerate(fit.coef_names_)}))
    p = len(fit.coef_names_)
    K = len(fit.site_names_)
    files["forest"] = out / "forest.png"
    _save_figure(lambda j, ax: fit.plot_forest(coef=j, ax=ax), p, 1.2 + 0.38 * (K + 2),
                 files["forest"])
    files["path"] = out / "path.png"
    _save_figure(lambda j, ax: fit.plot_path(coef=j, ax=ax), p, 4.5, files["path"])
    return files
