"""Classic meta-analysis of one scalar effect across sites: pooled estimates and heterogeneity.

Given site estimates ``y_k`` with standard errors ``s_k`` (within-site variances ``v_k = s_k^2``),
:func:`meta_analysis` fits

* the fixed-effect (inverse-variance) model, ``y_k ~ N(mu, v_k)``;
* the random-effects model ``y_k ~ N(mu, v_k + tau^2)`` with ``tau^2`` estimated by
  DerSimonian-Laird (method of moments) and by restricted maximum likelihood (REML, Fisher
  scoring);

and reports Cochran's Q test, I^2, H^2, tau^2 with its standard error, the prediction interval
for the effect at a new site and the weight of each site. Definitions follow the R package
metafor (``rma(yi, vi, method=...)`` with its default Wald-type z tests), so the numbers can be
checked against it:

* ``Q = sum_k w_k (y_k - mu_FE)^2`` with ``w_k = 1 / v_k``, referred to chi^2 with ``k - 1`` df.
* The "typical" within-site variance ``vt = (k - 1) / (sum w - sum w^2 / sum w)``.
* Random-effects models: ``I^2 = 100 tau^2 / (vt + tau^2)`` and ``H^2 = tau^2 / vt + 1``. For
  DerSimonian-Laird these equal the Q-based ``max(0, (Q - df) / Q)`` and ``max(1, Q / df)``;
  for REML they differ from them.
* Fixed-effect model: ``I^2 = max(0, 100 (Q - df) / Q)`` and ``H^2 = Q / df`` (not truncated).
* Prediction interval: ``mu +- z_{1 - alpha/2} sqrt(SE(mu)^2 + tau^2)`` (normal quantile, as
  metafor's ``predict()`` for models fitted with ``test="z"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .._util.display import ReportDisplay
from .._util.validation import as_float_array, check_choice, check_item
from .display import meta_analysis_report
from .summary import SiteSummary
from .tau2 import pool, reml_loglik, reml_tau2, trace_P, trace_PP

METHODS = ("REML", "DL")
MODEL_NAMES = ("fixed", "random (DL)", "random (REML)")
_SUMMARY_COLUMNS = ["estimate", "std err", "z", "P>|z|", "ci lower", "ci upper"]


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class PooledEstimate:
    """One pooled estimate of the common (or mean) effect.

    Attributes
    ----------
    model : str
        ``"fixed"``, ``"random (DL)"`` or ``"random (REML)"``.
    estimate : float
        Pooled estimate ``mu`` (NaN for a random-effects model fitted to one site).
    se : float
        Standard error ``sqrt(1 / sum_k w_k)`` with ``w_k = 1 / (v_k + tau^2)``.
    tau2 : float
        Between-site variance used for the weights (0 for the fixed-effect model).
    tau2_se : float
        Standard error of ``tau2`` as metafor reports it (NaN for the fixed-effect model).
    I2 : float
        I^2 in percent (definition depends on the model; see the module notes).
    H2 : float
        H^2 (definition depends on the model; see the module notes).
    weights : ndarray of shape (k,)
        Weight of each site in percent (they sum to 100).
    """

    model: str
    estimate: float
    se: float
    tau2: float
    tau2_se: float
    I2: float
    H2: float
    weights: np.ndarray

    @property
    def tau(self) -> float:
        """Between-site standard deviation ``sqrt(tau2)``."""
        return math.sqrt(self.tau2) if np.isfinite(self.tau2) else math.nan

    @property
    def z(self) -> float:
        """Wald statistic ``estimate / se``."""
        return self.estimate / self.se

    @property
    def pvalue(self) -> float:
        """Two-sided p-value of the Wald test of ``mu = 0``."""
        return float(2.0 * stats.norm.sf(abs(self.z))) if np.isfinite(self.z) else math.nan

    def confint(self, level: float = 0.95) -> tuple[float, float]:
        """Wald confidence interval ``estimate +- z_{(1+level)/2} se``."""
        q = stats.norm.ppf(0.5 + _check_level(level) / 2.0)
        return self.estimate - q * self.se, self.estimate + q * self.se

    def prediction_interval(self, level: float = 0.95) -> tuple[float, float]:
        """Interval for the true effect at a new site: ``estimate +- z sqrt(se^2 + tau2)``.

        For the fixed-effect model (``tau2 = 0``) it equals the confidence interval.
        """
        q = stats.norm.ppf(0.5 + _check_level(level) / 2.0)
        half = q * math.sqrt(self.se**2 + self.tau2) if np.isfinite(self.se) else math.nan
        return self.estimate - half, self.estimate + half


class MetaAnalysis(ReportDisplay):
    """Result of :func:`meta_analysis`: fixed- and random-effects pooling of one scalar effect.

    Attributes
    ----------
    k : int
        Number of sites.
    estimates, se : ndarray of shape (k,)
        Site estimates and their standard errors, as given.
    site_names : list of str
        Site labels (index of :meth:`site_table`).
    level : float
        Default confidence level of the intervals.
    method : str
        ``"REML"`` or ``"DL"``: the random-effects model behind the shortcuts :attr:`random`,
        :attr:`tau2`, :attr:`I2`, :attr:`H2` and :meth:`prediction_interval`.
    fixed, random_dl, random_reml : PooledEstimate
        The three pooled models.
    Q : float
        Cochran's Q statistic.
    Q_df : int
        Its degrees of freedom, ``k - 1``.
    Q_pvalue : float
        Upper-tail chi^2 p-value of Q (NaN when ``k = 1``).
    vt : float
        Typical within-site variance ``(k - 1) / (sum w - sum w^2 / sum w)`` (NaN when ``k = 1``).
    loglik_reml : float
        Restricted log-likelihood at the REML estimate (metafor's ``logLik(fit, REML=TRUE)``).
    reml_iterations : int
        Fisher scoring iterations used for the REML estimate of tau^2.
    reml_converged : bool
        Whether the REML estimate met its convergence criterion.
    notes : tuple of str
        Remarks about the fit (one site, boundary estimates, fall-backs).

    Notes
    -----
    With a single site the between-site variance is not identifiable: ``tau2`` is reported as 0
    (as metafor does), Q is 0 on 0 degrees of freedom, and the random-effects estimates, Q's
    p-value, I^2, H^2 and the random-effects prediction intervals are NaN. The fixed-effect row
    is then the site's own estimate.
    """

    def __init__(self, *, estimates: np.ndarray, se: np.ndarray, site_names: list[str], level: float,
                 method: str, fixed: PooledEstimate, random_dl: PooledEstimate,
                 random_reml: PooledEstimate, Q: float, Q_df: int, Q_pvalue: float, vt: float,
                 loglik_reml: float, reml_iterations: int, reml_converged: bool,
                 notes: tuple[str, ...]) -> None:
        self.estimates = estimates
        self.se = se
        self.site_names = site_names
        self.level = level
        self.method = method
        self.fixed = fixed
        self.random_dl = random_dl
        self.random_reml = random_reml
        self.Q = Q
        self.Q_df = Q_df
        self.Q_pvalue = Q_pvalue
        self.vt = vt
        self.loglik_reml = loglik_reml
        self.reml_iterations = reml_iterations
        self.reml_converged = reml_converged
        self.notes = notes

    # ------------------------------------------------------------------ shortcuts
    @property
    def k(self) -> int:
        """Number of sites."""
        return int(self.estimates.size)

    @property
    def models(self) -> tuple[PooledEstimate, PooledEstimate, PooledEstimate]:
        """The fixed, DerSimonian-Laird and REML pooled estimates, in that order."""
        return self.fixed, self.random_dl, self.random_reml

    @property
    def random(self) -> PooledEstimate:
        """The random-effects model selected by :attr:`method`."""
        return self.random_reml if self.method == "REML" else self.random_dl

    @property
    def tau2(self) -> float:
        """Between-site variance of the selected random-effects model."""
        return self.random.tau2

    @property
    def I2(self) -> float:
        """I^2 (percent) of the selected random-effects model."""
        return self.random.I2

    @property
    def H2(self) -> float:
        """H^2 of the selected random-effects model."""
        return self.random.H2

    def prediction_interval(self, level: float | None = None) -> tuple[float, float]:
        """Prediction interval for the effect at a new site (selected random-effects model)."""
        return self.random.prediction_interval(self.level if level is None else level)

    # ------------------------------------------------------------------ tables
    def summary(self, level: float | None = None) -> pd.DataFrame:
        """Pooled estimates of the three models.

        Parameters
        ----------
        level : float, optional
            Confidence level (default :attr:`level`).

        Returns
        -------
        pandas.DataFrame
            Index ``model`` (``fixed``, ``random (DL)``, ``random (REML)``); columns
            ``estimate``, ``std err``, ``z``, ``P>|z|``, ``ci lower``, ``ci upper``.
        """
        level = self.level if level is None else level
        rows = [[m.estimate, m.se, m.z, m.pvalue, *m.confint(level)] for m in self.models]
        return pd.DataFrame(rows, columns=_SUMMARY_COLUMNS,
                            index=pd.Index(MODEL_NAMES, name="model"))

    def confint(self, level: float | None = None) -> pd.DataFrame:
        """Confidence intervals of the three pooled estimates (columns ``lower``, ``upper``)."""
        level = self.level if level is None else level
        return pd.DataFrame([m.confint(level) for m in self.models], columns=["lower", "upper"],
                            index=pd.Index(MODEL_NAMES, name="model"))

    def heterogeneity_table(self, level: float | None = None) -> pd.DataFrame:
        """Heterogeneity statistics of the three models.

        Parameters
        ----------
        level : float, optional
            Level of the prediction intervals (default :attr:`level`).

        Returns
        -------
        pandas.DataFrame
            Index ``model``; columns ``tau2``, ``tau``, ``tau2 se``, ``I2 (%)``, ``H2``,
            ``pi lower``, ``pi upper`` (prediction interval for a new site), and Cochran's
            ``Q``, ``df``, ``P(Q)`` (the same on every row).
        """
        level = self.level if level is None else level
        rows = [[m.tau2, m.tau, m.tau2_se, m.I2, m.H2, *m.prediction_interval(level),
                 self.Q, self.Q_df, self.Q_pvalue] for m in self.models]
        cols = ["tau2", "tau", "tau2 se", "I2 (%)", "H2", "pi lower", "pi upper", "Q", "df", "P(Q)"]
        return pd.DataFrame(rows, columns=cols, index=pd.Index(MODEL_NAMES, name="model"))

    def site_table(self, level: float | None = None) -> pd.DataFrame:
        """Per-site estimates with Wald intervals and their weight (percent) in each model."""
        level = self.level if level is None else level
        q = stats.norm.ppf(0.5 + _check_level(level) / 2.0)
        return pd.DataFrame({
            "estimate": self.estimates,
            "std err": self.se,
            "ci lower": self.estimates - q * self.se,
            "ci upper": self.estimates + q * self.se,
            "weight % (fixed)": self.fixed.weights,
            "weight % (DL)": self.random_dl.weights,
            "weight % (REML)": self.random_reml.weights,
        }, index=pd.Index(self.site_names, name="site"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of all results (NaN written as ``None``)."""
        models = {}
        for key, m in zip(("fixed", "random_dl", "random_reml"), self.models):
            lo, hi = m.confint(self.level)
            plo, phi = m.prediction_interval(self.level)
            models[key] = {name: _json_float(val) for name, val in (
                ("estimate", m.estimate), ("se", m.se), ("z", m.z), ("pvalue", m.pvalue),
                ("ci_lower", lo), ("ci_upper", hi), ("tau2", m.tau2), ("tau2_se", m.tau2_se),
                ("I2", m.I2), ("H2", m.H2), ("pi_lower", plo), ("pi_upper", phi))}
            models[key]["weights"] = [_json_float(w) for w in m.weights]
        return {
            "k": self.k, "level": self.level, "method": self.method,
            "site_names": list(self.site_names),
            "estimates": self.estimates.tolist(), "se": self.se.tolist(),
            "models": models,
            "Q": _json_float(self.Q), "Q_df": self.Q_df, "Q_pvalue": _json_float(self.Q_pvalue),
            "vt": _json_float(self.vt), "loglik_reml": _json_float(self.loglik_reml),
            "reml": {"iterations": self.reml_iterations, "converged": self.reml_converged},
            "notes": list(self.notes),
        }

    def _display_report(self):
        return meta_analysis_report(self)


# --------------------------------------------------------------------------- entry points
def meta_analysis(estimates: Any, se: Any, *, level: float = 0.95, method: str = "REML",
                  site_names: Sequence[str] | None = None, reml_tol: float = 1e-10,
                  reml_max_iter: int = 100) -> MetaAnalysis:
    """Fixed- and random-effects meta-analysis of one scalar effect measured at k sites.

    Parameters
    ----------
    estimates : array_like of shape (k,)
        Site estimates ``y_k``.
    se : array_like of shape (k,)
        Their standard errors (finite, positive).
    level : float, default 0.95
        Confidence level of the intervals (strictly between 0 and 1).
    method : {"REML", "DL"}, default "REML"
        Random-effects model used by the result's shortcuts (``tau2``, ``I2``, ``H2``, ``random``,
        ``prediction_interval``). Both models are always fitted.
    site_names : sequence of str, optional
        Unique site labels (default ``site0``, ``site1``, ...).
    reml_tol : float, default 1e-10
        Fisher scoring stops when a step changes tau^2 by at most
        ``reml_tol * max(tau^2, vt)`` (relative to the typical within-site variance ``vt``, so the
        criterion does not depend on the units of the effect; metafor uses an absolute 1e-5).
    reml_max_iter : int, default 100
        Fisher scoring iterations before falling back to a bounded one-dimensional maximization
        of the restricted likelihood.

    Returns
    -------
    MetaAnalysis

    Raises
    ------
    ValueError
        If the inputs are not 1-D of equal, non-zero length, contain NaN or infinite values,
        ``se`` is not positive, the site names are not unique, or an option is invalid.

    Notes
    -----
    tau^2 is estimated by

    * DerSimonian-Laird: ``max(0, (Q - (k - 1)) / (sum w - sum w^2 / sum w))``;
    * REML: Fisher scoring from the Hedges (HE) estimate ``max(0, var(y) - mean(v))``, as in
      metafor, with steps ``(y'PPy - tr P) / tr(PP)`` where ``P = W - w w' / sum w`` and
      ``W = diag(1 / (v + tau^2))``. A step that would make tau^2 negative goes to 0 when 0 is a
      Karush-Kuhn-Tucker point of the restricted likelihood (its derivative at 0 is not
      positive) and is halved otherwise. If the converged value has a lower restricted
      likelihood than tau^2 = 0, 0 is taken (metafor does the same and warns).

    With a single site, see :class:`MetaAnalysis` (fixed effect only, ``tau2 = 0``).

    Examples
    --------
    >>> res = meta_analysis([0.1, 0.3, 0.2], [0.1, 0.2, 0.15])
    >>> res.summary().loc["fixed", "estimate"].round(4)
    0.1557
    """
    y, s = _check_effects(estimates, se)
    level = _check_level(level)
    check_choice(method, "method", METHODS)
    if isinstance(reml_tol, bool) or not (isinstance(reml_tol, (int, float)) and 0 < reml_tol < 1):
        raise ValueError(f"reml_tol: must be a number in (0, 1), got {reml_tol!r}")
    if isinstance(reml_max_iter, bool) or not isinstance(reml_max_iter, (int, np.integer)) \
            or reml_max_iter < 1:
        raise ValueError(f"reml_max_iter: must be an integer >= 1, got {reml_max_iter!r}")
    k = y.size
    names = _check_site_names(site_names, k)
    v = s**2
    notes: list[str] = []

    # Fixed effect and Cochran's Q (the weights are the inverse within-site variances).
    w = 1.0 / v
    mu_fe, se_fe = pool(y, w)
    Q = max(0.0, float(np.sum(w * (y - mu_fe) ** 2)))
    df = k - 1
    if k == 1:
        return _one_site(y, s, names, level, method, mu_fe, se_fe)

    Q_p = float(stats.chi2.sf(Q, df))
    trP_fe = trace_P(w)
    vt = df / trP_fe
    if Q > 0:
        I2_fe = max(0.0, 100.0 * (Q - df) / Q)
    else:
        I2_fe = 0.0  # identical estimates: no excess variation at all
    fixed = PooledEstimate("fixed", mu_fe, se_fe, 0.0, math.nan, I2_fe, Q / df, 100.0 * w / w.sum())

    # DerSimonian-Laird (moment estimator on the fixed-effect weights).
    tau2_dl = max(0.0, (Q - df) / trP_fe)
    trPP_fe = trace_PP(w)
    tau2_dl_se = math.sqrt((2.0 * df + 4.0 * tau2_dl * trP_fe + 2.0 * tau2_dl**2 * trPP_fe)
                           / trP_fe**2)
    random_dl = _random_model("random (DL)", y, v, tau2_dl, tau2_dl_se, vt)

    # REML.
    tau2_reml, iters, converged, reml_notes = reml_tau2(y, v, vt, float(reml_tol),
                                                         int(reml_max_iter))
    notes.extend(reml_notes)
    w_reml = 1.0 / (v + tau2_reml)
    tau2_reml_se = math.sqrt(2.0 / trace_PP(w_reml))
    random_reml = _random_model("random (REML)", y, v, tau2_reml, tau2_reml_se, vt)
    if tau2_dl == 0.0:
        notes.append("DerSimonian-Laird: Q <= df, tau^2 truncated at 0")
    if tau2_reml == 0.0:
        notes.append("REML: tau^2 estimate on the boundary 0")
    return MetaAnalysis(estimates=y, se=s, site_names=names, level=level, method=method,
                        fixed=fixed, random_dl=random_dl, random_reml=random_reml, Q=Q, Q_df=df,
                        Q_pvalue=Q_p, vt=vt, loglik_reml=reml_loglik(y, v, tau2_reml),
                        reml_iterations=iters, reml_converged=converged, notes=tuple(notes))


def meta_analysis_from_summaries(summaries: Sequence[SiteSummary] | Mapping[str, SiteSummary],
                                 coef: int | str = 0, **kwargs: Any) -> MetaAnalysis:
    """Meta-analysis of one coefficient of a set of site summaries.

    Parameters
    ----------
    summaries : sequence of SiteSummary, or mapping from site name to SiteSummary
        One summary per site, all with the same coefficients. Site names are the mapping's keys
        or each summary's ``site`` and must be unique.
    coef : int or str, default 0
        Position or name of the coefficient.
    **kwargs
        Passed to :func:`meta_analysis` (``level``, ``method``, ``reml_tol``, ``reml_max_iter``).

    Returns
    -------
    MetaAnalysis
        Uses each site's estimate and sandwich standard error of that coefficient.
    """
    if "site_names" in kwargs:
        raise ValueError("site_names: taken from the summaries; rename the sites there")
    if isinstance(summaries, SiteSummary):
        summaries = [summaries]
    if isinstance(summaries, Mapping):
        names = [str(key) for key in summaries]
        items = list(summaries.values())
    else:
        items = list(summaries)
        names = [str(getattr(s, "site", f"site{i}")) for i, s in enumerate(items)]
    if not items:
        raise ValueError("summaries: needs at least one site summary")
    for i, s in enumerate(items):
        if not isinstance(s, SiteSummary):
            raise ValueError(f"summaries: item {i} is a {type(s).__name__}, not a SiteSummary")
    coef_names = list(items[0].coef_names)
    for name, s in zip(names, items):
        if list(s.coef_names) != coef_names:
            raise ValueError(f"summaries: site {name!r} has coefficients {list(s.coef_names)}, "
                             f"site {names[0]!r} has {coef_names}")
    j = check_item(coef, "coef", coef_names)
    est = np.array([s.theta[j] for s in items])
    se = np.array([s.se[j] for s in items])
    return meta_analysis(est, se, site_names=names, **kwargs)


# --------------------------------------------------------------------------- internals
def _check_effects(estimates: Any, se: Any) -> tuple[np.ndarray, np.ndarray]:
    """Site estimates and standard errors as equal-length 1-D float arrays, checked."""
    y = as_float_array(estimates, "estimates")
    s = as_float_array(se, "se")
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"estimates: expected a non-empty 1-D array, got shape {y.shape}")
    if s.shape != y.shape:
        raise ValueError(f"se: expected shape {y.shape} (one per estimate), got {s.shape}")
    if np.any(s <= 0):
        bad = int(np.flatnonzero(s <= 0)[0])
        raise ValueError(f"se: standard errors must be positive, got {s[bad]!r} at position {bad}")
    with np.errstate(divide="ignore", over="ignore"):
        tiny = not np.all(np.isfinite(1.0 / s**2)) or not np.isfinite(np.sum(1.0 / s**2) ** 2)
    if tiny:
        raise ValueError("se: standard errors are too small to be squared and inverted")
    return y, s


def _one_site(y: np.ndarray, s: np.ndarray, names: list[str], level: float, method: str,
              mu_fe: float, se_fe: float) -> MetaAnalysis:
    """The result for a single site: the fixed effect only (see :class:`MetaAnalysis`)."""
    note = ("one site: tau^2 is not identifiable; it is set to 0 and the random-effects "
            "estimates, Q's p-value, I^2, H^2 and the prediction intervals are NaN")
    nan = math.nan
    fixed = PooledEstimate("fixed", mu_fe, se_fe, 0.0, nan, nan, nan, np.array([100.0]))
    empty = [PooledEstimate(name, nan, nan, 0.0, nan, nan, nan, np.array([nan]))
             for name in MODEL_NAMES[1:]]
    return MetaAnalysis(estimates=y, se=s, site_names=names, level=level, method=method,
                        fixed=fixed, random_dl=empty[0], random_reml=empty[1], Q=0.0, Q_df=0,
                        Q_pvalue=nan, vt=nan, loglik_reml=nan, reml_iterations=0,
                        reml_converged=True, notes=(note,))


def _check_level(level: Any) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) \
            or not 0.0 < float(level) < 1.0:
        raise ValueError(f"level: must be a number strictly between 0 and 1, got {level!r}")
    return float(level)


def _check_site_names(site_names: Sequence[str] | None, k: int) -> list[str]:
    if site_names is None:
        return [f"site{i}" for i in range(k)]
    if isinstance(site_names, str):
        raise ValueError("site_names: expected a sequence of names, got a single string")
    names = [str(n) for n in site_names]
    if len(names) != k:
        raise ValueError(f"site_names: expected {k} names (one per estimate), got {len(names)}")
    if len(set(names)) != k:
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"site_names: names must be unique, repeated: {dup}")
    return names


def _json_float(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _random_model(name: str, y: np.ndarray, v: np.ndarray, tau2: float, tau2_se: float,
                  vt: float) -> PooledEstimate:
    w = 1.0 / (v + tau2)
    mu, se = pool(y, w)
    return PooledEstimate(name, mu, se, tau2, tau2_se, 100.0 * tau2 / (vt + tau2), tau2 / vt + 1.0,
                          100.0 * w / w.sum())
