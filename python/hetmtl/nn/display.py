"""What the neural multi-task regressors print: fitted or not, tasks, sizes, key settings and
their reports (per task for the dual encoder, the grid and the imputer for block-wise models)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pandas as pd

from .._util.display import Report, Section

__all__ = ["neural_report"]

# Settings worth seeing at a glance, by class; any other setting shows when changed from its default.
KEY_SETTINGS: dict[str, tuple[str, ...]] = {
    "DualEncoderMTL": ("latent_shared", "latent_specific", "hidden", "lam_beta", "lam_specific",
                       "max_epochs"),
    "TwoPathwayMTL": ("imputer", "hidden", "n_layers", "grid", "max_epochs"),
    "SingleTaskBlockMLP": ("hidden", "n_layers", "max_epochs"),
    "SingleTaskMLP": ("hidden", "max_epochs"),
    "PooledMLP": ("hidden", "max_epochs"),
    "HardSharingMTL": ("hidden", "max_epochs"),
}
# Per-fit results printed when the estimator has them.
_RESULTS = {"best_epoch_": "best epoch", "n_epochs_": "epochs run", "lam_beta_": "chosen lam_beta",
            "best_params_": "chosen configuration"}


def _short(value: Any) -> str:
    if hasattr(value, "fit") and not isinstance(value, str):
        return type(value).__name__
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _settings(est: Any) -> dict[str, str]:
    params = est.get_params(deep=False)
    defaults = {name: p.default for name, p in inspect.signature(type(est).__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    key = KEY_SETTINGS.get(type(est).__name__, ())
    shown = {}
    for name, value in params.items():
        changed = name not in defaults or not _same(value, defaults[name])
        if name in key or changed:
            shown[name] = _short(value)
    return shown


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(np.all(a == b)) if type(a) is type(b) else False
    except (TypeError, ValueError):
        return False


def _task_table(est: Any) -> pd.DataFrame | None:
    report = getattr(est, "task_report_", None)
    if isinstance(report, pd.DataFrame):
        return report
    layout = getattr(est, "layout", None)
    if layout is not None and hasattr(layout, "summary"):
        return layout.summary()
    return None


def neural_report(est: Any) -> Report:
    """Fitted or not, tasks, sizes, key settings and the per-fit tables of a neural estimator.

    Parameters
    ----------
    est : MultiTaskRegressor
        A :class:`~hetmtl.nn.estimator.MultiTaskRegressor` (dual encoder, block-wise model or a
        baseline), fitted or not.

    Returns
    -------
    Report
    """
    name = type(est).__name__
    settings = Section("Settings (key ones and those changed from the defaults)",
                       values=_settings(est))
    if not hasattr(est, "scaler_"):
        return Report(f"{name} (not fitted: call fit(X, y, task) first)", [settings], fitted=False)
    tasks = ", ".join(str(t) for t in est.classes_[:12]) + (", ..." if est.n_tasks_ > 12 else "")
    values: dict[str, Any] = {"tasks": f"{est.n_tasks_} ({tasks})", "features": est.n_features_in_}
    for attr, label in _RESULTS.items():
        if hasattr(est, attr):
            value = getattr(est, attr)
            values[label] = (", ".join(f"{k}={v!r}" for k, v in value.items())
                             if isinstance(value, dict) else value)
    sections = [Section(values=values), settings]
    table = _task_table(est)
    if table is not None:
        sections.append(Section("Tasks", table=table))
    cv = getattr(est, "cv_results_", None)
    if isinstance(cv, pd.DataFrame) and len(cv) > 1:
        sections.append(Section("Grid of configurations (validation loss, rank 1 chosen)",
                                table=cv.sort_values("rank") if "rank" in cv else cv))
    imputer_report = getattr(getattr(est, "imputer_", None), "report_", None)
    if isinstance(imputer_report, pd.DataFrame) and len(imputer_report):
        sections.append(Section("Imputer (per imputed source)", table=imputer_report))
    return Report(f"{name}, fitted", sections)
