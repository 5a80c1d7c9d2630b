"""Summary tables of simulation studies: Monte-Carlo means with their standard errors."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .._util.validation import ArgumentError

__all__ = ["summarize_study"]

_STATS = ("n", "mean", "mcse", "sd", "min", "max")


def summarize_study(
    df: pd.DataFrame,
    by: Sequence[str] | str | None = None,
    metrics: Sequence[str] | str | None = None,
    *,
    wide: bool = False,
) -> pd.DataFrame:
    """Summarize replications: per group and metric, n, mean, Monte-Carlo SE, sd, min, max.

    Parameters
    ----------
    df : pandas.DataFrame
        A study table, typically from :func:`run_study`.
    by : str, sequence of str or None
        Grouping columns. None means the configuration columns recorded by :func:`run_study`
        (``df.attrs["config_columns"]``), or no grouping when they are not recorded.
    metrics : str, sequence of str or None
        Numeric (or boolean) columns to summarize. None means ``df.attrs["metric_columns"]``
        when recorded, else every numeric column outside ``by`` and ``rep``; non-numeric
        metric columns (e.g. a method label) are then left out, so group by them explicitly.
    wide : bool, default False
        Return one row per group with columns ``(metric, statistic)`` instead of the long form.

    Returns
    -------
    pandas.DataFrame
        Long form: the ``by`` columns, ``metric``, ``n`` (non-missing values), ``mean``,
        ``mcse`` (Monte-Carlo standard error of the mean, sd / sqrt(n)), ``sd`` (ddof = 1),
        ``min``, ``max``; groups in order of first appearance, metrics in the given order.

    Notes
    -----
    The mean of a 0/1 column (e.g. interval coverage) is a proportion and its ``mcse`` is
    sqrt(p (1 - p) / (n - 1)) up to the ddof convention. Missing values are ignored per metric.
    """
    if not isinstance(df, pd.DataFrame):
        raise ArgumentError("df", f"expected a pandas DataFrame, got {type(df).__name__}")
    by_cols = _grouping_columns(df, by)
    metric_cols = _metric_columns(df, metrics, by_cols)
    if by_cols:
        codes = df.groupby(by_cols, sort=False, dropna=False).ngroup().to_numpy()
        keys = df[by_cols].drop_duplicates().reset_index(drop=True)  # first appearance order
    else:
        codes = np.zeros(len(df), dtype=np.int64)
        keys = pd.DataFrame(index=range(1))
    parts = [_metric_stats(df, metric, codes, keys, j) for j, metric in enumerate(metric_cols)]
    out = pd.concat(parts, ignore_index=True).sort_values(["_group", "_metric"], kind="stable")
    out = out.drop(columns=["_group", "_metric"]).reset_index(drop=True)
    return _wide(out, keys, by_cols, metric_cols) if wide else out


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _grouping_columns(df: pd.DataFrame, by: Sequence[str] | str | None) -> list[str]:
    if by is None:
        by_cols = [c for c in df.attrs.get("config_columns", []) if c in df.columns]
    else:
        by_cols = [by] if isinstance(by, str) else list(by)
    missing = [c for c in by_cols if c not in df.columns]
    if missing:
        raise ArgumentError("by", f"column(s) {missing} not in df")
    return by_cols


def _metric_columns(df: pd.DataFrame, metrics: Sequence[str] | str | None,
                    by_cols: list[str]) -> list[str]:
    if metrics is None:
        recorded = df.attrs.get("metric_columns")
        candidates = recorded if recorded is not None else [
            c for c in df.columns if c not in by_cols and c != "rep"]
        metric_cols = [c for c in candidates if c in df.columns and c not in by_cols
                       and _is_numeric(df[c])]
    else:
        metric_cols = [metrics] if isinstance(metrics, str) else list(metrics)
        absent = [c for c in metric_cols if c not in df.columns]
        if absent:
            raise ArgumentError("metrics", f"column(s) {absent} not in df")
        overlap = [c for c in metric_cols if c in by_cols]
        if overlap:
            raise ArgumentError("metrics", f"column(s) {overlap} are also grouping columns")
        bad = [c for c in metric_cols if not _is_numeric(df[c])]
        if bad:
            raise ArgumentError("metrics", f"column(s) {bad} are not numeric")
    if not metric_cols:
        raise ArgumentError("metrics", "no numeric metric columns to summarize")
    return metric_cols


def _metric_stats(df: pd.DataFrame, metric: str, codes: np.ndarray, keys: pd.DataFrame,
                  position: int) -> pd.DataFrame:
    """The statistics of one metric per group (with sort keys ``_group`` and ``_metric``)."""
    n_groups = len(keys)
    vals = pd.Series(df[metric].to_numpy(dtype=np.float64, na_value=np.nan), copy=False)
    grouped = vals.groupby(codes, sort=True)
    n = grouped.count().reindex(range(n_groups), fill_value=0)
    sd = grouped.std(ddof=1).reindex(range(n_groups))
    part = keys.copy()
    part["metric"] = metric
    part["n"] = n.to_numpy(dtype=np.int64)
    part["mean"] = grouped.mean().reindex(range(n_groups)).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        part["mcse"] = sd.to_numpy() / np.sqrt(part["n"].to_numpy(dtype=np.float64))
    part["sd"] = sd.to_numpy()
    part["min"] = grouped.min().reindex(range(n_groups)).to_numpy()
    part["max"] = grouped.max().reindex(range(n_groups)).to_numpy()
    part["_group"] = np.arange(n_groups)
    part["_metric"] = position
    return part


def _wide(out: pd.DataFrame, keys: pd.DataFrame, by_cols: list[str],
          metric_cols: list[str]) -> pd.DataFrame:
    # Rows are sorted by group, then metric, so each group's statistics are one contiguous run.
    columns = pd.MultiIndex.from_product([metric_cols, list(_STATS)],
                                         names=["metric", "statistic"])
    values = out[list(_STATS)].to_numpy(dtype=np.float64).reshape(len(keys), len(columns))
    if len(by_cols) > 1:
        index = pd.MultiIndex.from_frame(keys)
    elif by_cols:
        index = pd.Index(keys[by_cols[0]], name=by_cols[0])
    else:
        index = pd.RangeIndex(1)
    return pd.DataFrame(values, index=index, columns=columns)
