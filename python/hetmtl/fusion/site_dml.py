"""Per-site double machine learning: cross-fitted nuisances, a linear orthogonal score, a summary.

:class:`SiteDML` is what each site runs on its own rows. Besides the usual estimate, standard
error and confidence interval it produces :attr:`SiteDML.summary_`, the
:class:`~hetmtl.fusion.summary.SiteSummary` that the site sends to the center (no row-level data).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.utils.validation import check_is_fitted

from .. import __version__
from .._util.validation import as_float_array, check_choice
from .crossfit import NuisanceSpec, check_folds, crossfit_predict, make_folds
from .scores import LinearScore, aipw_ate_score, plr_score, rlearner_score, sandwich
from .summary import FoldSummary, SiteSummary

MODELS = ("plr", "irm", "cate_linear")
_SCORE_NAMES = {"plr": "partialling out", "irm": "ATE (AIPW)", "cate_linear": "R-learner"}
# Learners each model uses; any other learner argument must be left as None.
_MODEL_LEARNERS = {"plr": ("ml_l", "ml_m"), "irm": ("ml_g", "ml_m"), "cate_linear": ("ml_l", "ml_m")}
# DoubleML aggregates repeated cross-fitting with this fixed critical value (not the level's).
_AGG_CRIT = 1.96


@dataclass
class _Inputs:
    y: np.ndarray           # (n,)
    d: np.ndarray           # (n, k)
    x: np.ndarray           # (n, q)
    x_frame: Any            # the covariates as given (DataFrame or array), for a basis callable
    groups: np.ndarray | None
    n_groups: int
    y_name: str
    d_names: list[str]


class SiteDML(BaseEstimator):
    """Double machine learning on one site's rows, with a summary for late fusion.

    Parameters
    ----------
    model : {"plr", "irm", "cate_linear"}, default "plr"
        ``"plr"``: partially linear model ``Y = D'theta + g(X) + e`` with the partialling-out
        score; ``D`` may have several columns, whose coefficients are estimated jointly,
        ``theta = (sum Dt Dt')^-1 sum Dt Yt`` with ``Yt = Y - l(X)``, ``Dt = D - m(X)``.
        ``"irm"``: average treatment effect of a binary treatment with the AIPW score.
        ``"cate_linear"``: linear conditional average treatment effect ``tau(x) = phi(x)'beta`` of a
        binary treatment ``A``, by the R-learner (PLR with ``Dt = (A - m(X)) phi(X)``).
    ml_l : estimator, optional
        Learner of ``l(X) = E[Y | X]`` (``"plr"``, ``"cate_linear"``). A classifier is accepted for
        an outcome coded 0/1 (its ``predict_proba`` is used).
    ml_m : estimator, optional
        Learner of ``m(X) = E[D | X]``. ``"plr"``: a regressor, or a classifier for treatments coded
        0/1 (one clone per treatment column). ``"irm"``, ``"cate_linear"``: a classifier (the
        propensity score).
    ml_g : estimator, optional
        Outcome regression of ``"irm"``, fitted separately on the treated and on the controls of
        each training fold (as DoubleML does). A classifier is accepted for an outcome coded 0/1.
    n_folds : int, default 5
        Number of cross-fitting folds.
    n_rep : int, default 1
        Number of repeated sample splits. With ``n_rep > 1`` the estimates are aggregated as
        DoubleML 0.10 does: ``coef = median_r theta_r`` and
        ``se = (median_r(theta_r + 1.96 se_r) - coef) / 1.96``.
    basis : list of str or callable, optional
        ``"cate_linear"`` only: the basis ``phi``. A list of column names of ``data``, or a callable
        mapping the covariates (a DataFrame of the ``x`` columns when ``data`` is a DataFrame,
        otherwise the 2-D covariate array) to an (n, r) array or DataFrame. None gives the
        intercept alone (an overlap-weighted average effect). An intercept column is prepended
        unless the basis already has a constant column.
    clip : float, default 0.01
        ``"irm"``: propensities are clipped to ``[clip, 1 - clip]`` (DoubleML's ``"truncate"``
        trimming with ``trimming_threshold=clip``). The R-learner does not divide by the
        propensity and ``"plr"`` has none, so there it has no effect.
    site : str, default "site"
        Name of the site, used in messages and in the summary.
    random_state : int, numpy.random.SeedSequence or None
        Seed of the sample splits (and of the default learners). The folds of repetition r come
        from child stream r, so they are reproducible bit for bit and do not depend on ``n_rep``.
        Learners you pass are cloned as they are: give them a fixed ``random_state`` too for
        fully reproducible fits.

    Attributes
    ----------
    coef_ : ndarray of shape (p,)
        Estimates.
    se_ : ndarray of shape (p,)
        Standard errors (cluster-robust when ``cluster`` is given).
    cov_ : ndarray of shape (p, p)
        Covariance of ``coef_``: the sandwich ``J^-1 Omega J^-T / n`` for ``n_rep=1``; for
        ``n_rep > 1`` the aggregated standard errors combined with the correlation of the mean of
        the repetitions' sandwich covariances.
    coef_names_ : list of str
        Names of the coefficients (treatment columns; ``"intercept"`` and basis names for
        ``"cate_linear"``).
    n_obs_ : int
        Number of rows.
    n_clusters_ : int or None
        Number of clusters, when ``cluster`` is given.
    n_folds_, n_rep_ : int
        Folds and repetitions actually used (taken from ``folds`` when given).
    all_coef_, all_se_ : ndarray of shape (n_rep, p)
        Per-repetition estimates and standard errors.
    folds_ : list of list of ndarray
        Test rows of every fold of every repetition.
    learners_ : dict
        The (unfitted) learners used, by role.
    predictions_ : dict
        Cross-fitted nuisance predictions by role, each of shape (n_rep, n) (``"ml_m"`` of
        ``"plr"``: (n_rep, n, k) for k treatment columns). Propensities are stored as the learner
        predicted them, before clipping.
    summary_ : SiteSummary
        What the site sends to the center: ``theta = coef_``, ``J``, ``Omega``, ``n``, fold
        summaries of the first repetition, metadata. ``summary_.cov`` equals ``cov_``.

    Notes
    -----
    Default learners (when ``ml_*`` is None): ``RandomForestRegressor(n_estimators=100,
    min_samples_leaf=5)`` for regressions and ``RandomForestClassifier(n_estimators=100,
    min_samples_leaf=5)`` for propensities, with ``random_state`` drawn from ``random_state``.

    Folds are drawn at random; with a binary treatment (single column coded 0/1) and no clusters
    they are stratified by treatment. With ``cluster`` every cluster lies in one fold and the
    score covariance is cluster-robust, ``Omega = (1/n) sum_c S_c S_c'`` with ``S_c`` the sum of
    the scores of cluster c.

    Differences from DoubleML: with several treatment columns ``"plr"`` estimates them jointly
    (DoubleML fits one treatment at a time with the others among the covariates); with clusters
    the standard errors are the one-way cluster-robust sandwich above.
    """

    def __init__(self, model: str = "plr", ml_l: Any = None, ml_m: Any = None, ml_g: Any = None,
                 n_folds: int = 5, n_rep: int = 1, basis: Sequence[str] | Callable | None = None,
                 clip: float = 0.01, site: str = "site",
                 random_state: int | np.random.SeedSequence | None = None) -> None:
        self.model = model
        self.ml_l = ml_l
        self.ml_m = ml_m
        self.ml_g = ml_g
        self.n_folds = n_folds
        self.n_rep = n_rep
        self.basis = basis
        self.clip = clip
        self.site = site
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, data: pd.DataFrame | None = None, *, y: Any, d: Any, x: Any = None,
            cluster: Any = None, folds: Any = None, predictions: dict[str, Any] | None = None) -> "SiteDML":
        """Cross-fit the nuisances, solve the score and build the site summary.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            The site's rows. When given, ``y``, ``d``, ``x`` and ``cluster`` are column names
            (``d`` and ``x`` may be lists of names; ``x=None`` takes every column that is not
            ``y``, ``d`` or ``cluster``). When None they are arrays.
        y : str or array_like of shape (n,)
            Outcome.
        d : str, list of str or array_like of shape (n,) or (n, k)
            Treatment(s); a single column coded 0/1 for ``"irm"`` and ``"cate_linear"``.
        x : str, list of str or array_like of shape (n, q)
            Covariates of the nuisance functions.
        cluster : str or array_like of shape (n,), optional
            Cluster (group) labels: folds keep clusters together and standard errors are
            cluster-robust.
        folds : list, optional
            Explicit sample splits instead of random ones: a list over repetitions of lists of
            test-index arrays (one repetition's list alone is accepted too), or DoubleML's
            ``set_sample_splitting`` format with ``(train, test)`` tuples. ``n_folds`` and
            ``n_rep`` are then taken from it.
        predictions : dict, optional
            External out-of-fold nuisance predictions by role (``"ml_l"``, ``"ml_m"`` for
            ``"plr"``/``"cate_linear"``; ``"ml_g0"``, ``"ml_g1"``, ``"ml_m"`` for ``"irm"``), each
            of shape (n,) or (n_rep, n) (``"ml_m"`` of a ``"plr"`` with k treatments: (n, k) or
            (n_rep, n, k)), for example fused nuisances from
            :class:`~hetmtl.fusion.nuisance_fusion.NuisanceFusion`. Needs ``folds``: the
            predictions of the rows in fold f must not have seen fold f. Roles not given are
            cross-fitted with their learners as usual.

        Returns
        -------
        self
        """
        model = check_choice(self.model, "model", MODELS)
        n_folds, n_rep, clip, site = self._check_params()
        inp = _collect_inputs(data, y, d, x, cluster)
        n = inp.y.shape[0]
        binary_d = inp.d.shape[1] == 1 and _is_binary01(inp.d[:, 0])
        if model in ("irm", "cate_linear"):
            if inp.d.shape[1] != 1:
                raise ValueError(f"d: model {model!r} needs a single binary treatment column coded "
                                 f"0/1, got {inp.d.shape[1]} columns")
            if not binary_d:
                bad = inp.d[(inp.d[:, 0] != 0) & (inp.d[:, 0] != 1), 0][0]
                raise ValueError(f"d: model {model!r} needs a binary treatment coded 0/1, found the "
                                 f"value {bad:g}")
        phi, phi_names = (self._basis(data, inp) if model == "cate_linear" else (None, None))
        if model != "cate_linear" and self.basis is not None:
            raise ValueError(f"basis: only used by model 'cate_linear', not by {model!r}")

        root = _seed_sequence(self.random_state)
        learners = self._learners(model, inp, root)

        if folds is None:
            all_tests = _draw_folds(inp, root, n_folds, n_rep, binary_d)
        else:
            all_tests = check_folds(folds, n, inp.groups)
            n_folds, n_rep = len(all_tests[0]), len(all_tests)

        specs = self._specs(model, inp, learners)
        external = _external_predictions(predictions, folds, model, n, n_rep, inp.d.shape[1])
        specs = [sp for sp in specs if sp.name not in external]
        p = inp.d.shape[1] if model != "cate_linear" else phi.shape[1]
        all_coef = np.empty((n_rep, p))
        all_se = np.empty((n_rep, p))
        all_J = np.empty((n_rep, p, p))
        all_V = np.empty((n_rep, p, p))
        preds_by_rep = []
        first_score = None
        first_moments = None
        for r, tests in enumerate(all_tests):
            preds = crossfit_predict(specs, inp.x, tests, rep=r) if specs else {}
            preds.update({name: arr[r] for name, arr in external.items()})
            preds_by_rep.append(preds)
            score = _build_score(model, inp, preds, phi, clip)
            theta = score.solve(site=site)
            J, Omega = score.moments(theta, groups=inp.groups)
            _check_omega(Omega, site, "")
            V = sandwich(J, Omega, n)
            all_coef[r], all_se[r], all_J[r], all_V[r] = theta, np.sqrt(np.diag(V)), J, V
            if r == 0:
                first_score, first_moments = score, (J, Omega)

        if n_rep == 1:
            coef, se, cov = all_coef[0], all_se[0], all_V[0]
            J, Omega = first_moments
        else:
            coef = np.median(all_coef, axis=0)
            se = (np.median(all_coef + _AGG_CRIT * all_se, axis=0) - coef) / _AGG_CRIT
            Vbar = all_V.mean(axis=0)
            sd = np.sqrt(np.diag(Vbar))
            cov = (Vbar / np.outer(sd, sd)) * np.outer(se, se)
            cov = 0.5 * (cov + cov.T)
            # Moments consistent with the aggregated covariance: J^-1 Omega J^-T / n == cov.
            J = all_J.mean(axis=0)
            Omega = n * J @ cov @ J.T
            Omega = 0.5 * (Omega + Omega.T)

        names = list(phi_names) if model == "cate_linear" else list(inp.d_names)
        fold_summaries = self._fold_summaries(first_score, all_tests[0], inp.groups, site)
        metadata = {
            "model": model,
            "score": _SCORE_NAMES[model],
            "learners": {role: ("external" if _role_external(role, external) else type(est).__name__)
                         for role, est in learners.items()},
            "n_folds": int(n_folds),
            "n_rep": int(n_rep),
            "clip": float(clip),
            "cluster": inp.groups is not None,
            "n_clusters": int(inp.n_groups) if inp.groups is not None else None,
            "outcome": inp.y_name,
            "hetmtl_version": __version__,
        }
        if model == "cate_linear":
            metadata["basis"] = names
        self.summary_ = SiteSummary(theta=coef, J=J, Omega=Omega, n=n, site=site, model=model,
                                    coef_names=names, folds=fold_summaries, metadata=metadata)
        self.coef_ = coef
        self.se_ = se
        self.cov_ = cov
        self.coef_names_ = names
        self.n_obs_ = int(n)
        self.n_clusters_ = int(inp.n_groups) if inp.groups is not None else None
        self.n_folds_ = int(n_folds)
        self.n_rep_ = int(n_rep)
        self.all_coef_ = all_coef
        self.all_se_ = all_se
        self.folds_ = all_tests
        self.learners_ = learners
        self.predictions_ = _stack_predictions(preds_by_rep, model, inp.d_names)
        return self

    def _check_params(self) -> tuple[int, int, float, str]:
        if not isinstance(self.n_folds, Integral) or isinstance(self.n_folds, bool) or self.n_folds < 2:
            raise ValueError(f"n_folds: must be an integer >= 2, got {self.n_folds!r}")
        if not isinstance(self.n_rep, Integral) or isinstance(self.n_rep, bool) or self.n_rep < 1:
            raise ValueError(f"n_rep: must be an integer >= 1, got {self.n_rep!r}")
        if not isinstance(self.clip, Real) or not (0.0 <= float(self.clip) < 0.5):
            raise ValueError(f"clip: must be a number in [0, 0.5), got {self.clip!r}")
        if not isinstance(self.site, str) or not self.site:
            raise ValueError(f"site: must be a non-empty string, got {self.site!r}")
        return int(self.n_folds), int(self.n_rep), float(self.clip), self.site

    def _learners(self, model: str, inp: _Inputs, root: np.random.SeedSequence) -> dict[str, Any]:
        given = {"ml_l": self.ml_l, "ml_m": self.ml_m, "ml_g": self.ml_g}
        used = _MODEL_LEARNERS[model]
        for role, est in given.items():
            if role not in used and est is not None:
                raise ValueError(f"{role}: not used by model {model!r} (it uses {' and '.join(used)})")
        # Default learners get seeds from their own stream, independent of the folds'.
        learner_seed = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, 1))
        seeds = learner_seed.generate_state(2)
        y_binary = _is_binary01(inp.y)
        out = {}
        for i, role in enumerate(used):
            est = given[role]
            wants_proba = role == "ml_m" and model in ("irm", "cate_linear")
            if est is None:
                cls = RandomForestClassifier if wants_proba else RandomForestRegressor
                est = cls(n_estimators=100, min_samples_leaf=5, random_state=int(seeds[i]))
            if not hasattr(est, "fit"):
                raise ValueError(f"{role}: expected a scikit-learn estimator with a fit method, got "
                                 f"{type(est).__name__}")
            clf = _is_clf(est)
            if wants_proba and not (clf and hasattr(est, "predict_proba")):
                raise ValueError(f"{role}: model {model!r} needs a classifier with predict_proba for "
                                 f"the propensity score, got {type(est).__name__}")
            if clf and not wants_proba:
                if not hasattr(est, "predict_proba"):
                    raise ValueError(f"{role}: classifier {type(est).__name__} has no predict_proba")
                if role == "ml_m" and not all(_is_binary01(inp.d[:, j]) for j in range(inp.d.shape[1])):
                    raise ValueError(f"{role}: a classifier needs treatments coded 0/1; use a regressor "
                                     "for a continuous treatment")
                if role in ("ml_l", "ml_g") and not y_binary:
                    raise ValueError(f"{role}: a classifier needs an outcome coded 0/1; use a regressor "
                                     "for a continuous outcome")
            if not clf and not hasattr(est, "predict"):
                raise ValueError(f"{role}: {type(est).__name__} has no predict method")
            out[role] = est
        return out

    def _specs(self, model: str, inp: _Inputs, learners: dict[str, Any]) -> list[NuisanceSpec]:
        ml_m_proba = _is_clf(learners["ml_m"])
        if model == "irm":
            g_proba = _is_clf(learners["ml_g"])
            a = inp.d[:, 0]
            return [
                NuisanceSpec("ml_g0", learners["ml_g"], inp.y, proba=g_proba, subset=a == 0,
                             target_name="d", subset_name="controls (d == 0)"),
                NuisanceSpec("ml_g1", learners["ml_g"], inp.y, proba=g_proba, subset=a == 1,
                             target_name="d", subset_name="treated (d == 1)"),
                NuisanceSpec("ml_m", learners["ml_m"], a, proba=True, target_name="d", must_vary=True),
            ]
        specs = [NuisanceSpec("ml_l", learners["ml_l"], inp.y, proba=_is_clf(learners["ml_l"]))]
        for j in range(inp.d.shape[1]):
            label = "ml_m" if inp.d.shape[1] == 1 else f"ml_m (treatment {inp.d_names[j]!r})"
            specs.append(NuisanceSpec(f"ml_m:{j}", learners["ml_m"], inp.d[:, j], proba=ml_m_proba,
                                      target_name="d", must_vary=True, label=label))
        return specs

    def _basis(self, data: pd.DataFrame | None, inp: _Inputs) -> tuple[np.ndarray, list[str]]:
        basis = self.basis
        n = inp.y.shape[0]
        if basis is None:
            raw, names = np.empty((n, 0)), []
        elif callable(basis):
            frame = inp.x_frame.get() if isinstance(inp.x_frame, _LazyFrame) else inp.x_frame
            out = basis(frame)
            if isinstance(out, pd.DataFrame):
                names = [str(c) for c in out.columns]
            raw = as_float_array(out, "basis")
            if raw.ndim == 1:
                raw = raw[:, None]
            if raw.ndim != 2 or raw.shape[0] != n:
                raise ValueError(f"basis: the callable must return an array of shape ({n}, r), "
                                 f"got {raw.shape}")
            if not isinstance(out, pd.DataFrame):
                names = [f"phi{j + 1}" for j in range(raw.shape[1])]
        elif isinstance(basis, str) or (isinstance(basis, (list, tuple))
                                        and all(isinstance(c, str) for c in basis)):
            cols = [basis] if isinstance(basis, str) else list(basis)
            if data is None:
                raise ValueError("basis: column names need data to be a DataFrame; pass a callable "
                                 "when the inputs are arrays")
            _check_columns(data, cols, "basis")
            raw, names = as_float_array(data[cols].to_numpy(), "basis").reshape(n, -1), cols
        else:
            raise ValueError("basis: expected None, a list of column names of data or a callable, "
                             f"got {type(basis).__name__}")
        constant = (np.ptp(raw, axis=0) == 0) & (raw[0] != 0) if raw.shape[1] else np.zeros(0, bool)
        if not constant.any():
            raw = np.column_stack([np.ones(n), raw])
            names = ["intercept", *names]
        return raw, names

    @staticmethod
    def _fold_summaries(score: LinearScore, tests: list[np.ndarray], groups: np.ndarray | None,
                        site: str) -> tuple[FoldSummary, ...]:
        out = []
        try:
            for k, rows in enumerate(tests):
                where = f" on fold {k} alone"
                theta = score.solve(rows, site=site, where=where)
                J, Omega = score.moments(theta, rows, groups)
                _check_omega(Omega, site, where)
                out.append(FoldSummary(int(rows.size), theta, J, Omega))
        except ValueError as exc:
            warnings.warn(f"site {site!r}: fold summaries left out of summary_ ({exc}); the center "
                          "cannot cross-validate with this site's folds. Fewer folds give each fold "
                          "more rows.", UserWarning, stacklevel=3)
            return ()
        return tuple(out)

    def split(self, data: pd.DataFrame | None = None, *, y: Any, d: Any, x: Any = None,
              cluster: Any = None) -> list[list[np.ndarray]]:
        """The sample splits :meth:`fit` would draw for these inputs, without fitting anything.

        Useful when the nuisances come from elsewhere (e.g. nuisance fusion): the site computes
        its grid summary on these folds and later passes them to ``fit(folds=...)``.

        Returns
        -------
        list of list of ndarray
            ``folds[r][k]``: sorted test rows of fold k in repetition r (the form of ``folds_``).
        """
        n_folds, n_rep, _, _ = self._check_params()
        inp = _collect_inputs(data, y, d, x, cluster)
        binary_d = inp.d.shape[1] == 1 and _is_binary01(inp.d[:, 0])
        return _draw_folds(inp, _seed_sequence(self.random_state), n_folds, n_rep, binary_d)

    # ------------------------------------------------------------------ results
    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Confidence intervals ``coef +- z se``.

        For ``n_rep > 1`` the bounds are the medians over repetitions of each repetition's
        interval, as in DoubleML.

        Parameters
        ----------
        level : float, default 0.95
            Confidence level in (0, 1).

        Returns
        -------
        pandas.DataFrame
            One row per coefficient, columns ``"{alpha/2} %"`` and ``"{1 - alpha/2} %"``.
        """
        check_is_fitted(self, "coef_")
        if not isinstance(level, Real) or not (0.0 < float(level) < 1.0):
            raise ValueError(f"level: must be a number in (0, 1), got {level!r}")
        alpha = 1.0 - float(level)
        z = norm.ppf(1.0 - alpha / 2.0)
        lower = np.median(self.all_coef_ - z * self.all_se_, axis=0)
        upper = np.median(self.all_coef_ + z * self.all_se_, axis=0)
        cols = [f"{100 * alpha / 2:.1f} %", f"{100 * (1 - alpha / 2):.1f} %"]
        return pd.DataFrame(np.column_stack([lower, upper]), index=self.coef_names_, columns=cols)

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """Result table: coef, std err, z, P>|z| and the confidence bounds at ``level``."""
        ci = self.confint(level)
        z = self.coef_ / self.se_
        table = pd.DataFrame({"coef": self.coef_, "std err": self.se_, "z": z,
                              "P>|z|": 2.0 * norm.sf(np.abs(z))}, index=self.coef_names_)
        return pd.concat([table, ci], axis=1)


# ---------------------------------------------------------------------- helpers
def _is_clf(est: Any) -> bool:
    return bool(is_classifier(est) or (hasattr(est, "predict_proba") and not is_regressor(est)))


def _is_binary01(v: np.ndarray) -> bool:
    return bool(np.all((v == 0) | (v == 1)))


def _seed_sequence(random_state: Any) -> np.random.SeedSequence:
    if isinstance(random_state, np.random.SeedSequence):
        return random_state
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, Integral) and not isinstance(random_state, bool) and random_state >= 0:
        return np.random.SeedSequence(int(random_state))
    raise ValueError("random_state: expected None, a non-negative integer or a "
                     f"numpy.random.SeedSequence, got {random_state!r}")


def _check_omega(Omega: np.ndarray, site: str, where: str) -> None:
    eig = np.linalg.eigvalsh(Omega)
    if not (eig[-1] > 0 and eig[0] > 1e-12 * eig[-1]):
        raise ValueError(f"site {site!r}: the score covariance Omega{where} is not positive definite "
                         "(the residuals vanish or the scores are collinear)")


def _check_columns(data: pd.DataFrame, cols: Sequence[str], arg: str) -> None:
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise ValueError(f"{arg}: column(s) {missing} not found in data")


def _names(value: Any, arg: str, allow_list: bool) -> list[str]:
    if isinstance(value, str):
        return [value]
    if allow_list and isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    what = "a column name or a list of column names" if allow_list else "a column name"
    raise ValueError(f"{arg}: with data given, expected {what}, got {type(value).__name__}")


class _LazyFrame:
    """The covariate columns of ``data``, sliced only if a basis callable asks for them."""

    def __init__(self, data: pd.DataFrame, cols: list[str]) -> None:
        self.data, self.cols = data, cols

    def get(self) -> pd.DataFrame:
        return self.data[self.cols]


def _frame_arrays(data: pd.DataFrame, groups: list[list[str]], args: list[str]) -> list[np.ndarray]:
    """Float arrays of several column groups of ``data``, each checked under its argument's name."""
    if data.columns.is_unique and all(dt.kind in "biuf" for dt in data.dtypes):
        # All-numeric frame: one conversion of the whole block, then column picks (much cheaper
        # than slicing sub-frames, which matters when thousands of sites are fitted).
        block = data.to_numpy(dtype=np.float64, na_value=np.nan)
        position = {c: j for j, c in enumerate(data.columns)}
        return [as_float_array(block[:, [position[c] for c in cols]], arg)
                for cols, arg in zip(groups, args)]
    return [as_float_array(data[cols].to_numpy(), arg).reshape(len(data), len(cols))
            for cols, arg in zip(groups, args)]


def _collect_inputs(data: Any, y: Any, d: Any, x: Any, cluster: Any) -> _Inputs:
    """Turn column names or arrays into validated float arrays (and cluster codes)."""
    if data is not None:
        if not isinstance(data, pd.DataFrame):
            raise ValueError(f"data: expected a pandas DataFrame or None, got {type(data).__name__}")
        y_cols = _names(y, "y", allow_list=False)
        d_cols = _names(d, "d", allow_list=True)
        c_cols = _names(cluster, "cluster", allow_list=False) if cluster is not None else []
        _check_columns(data, y_cols, "y")
        _check_columns(data, d_cols, "d")
        _check_columns(data, c_cols, "cluster")
        if x is None:
            taken = set(y_cols) | set(d_cols) | set(c_cols)
            x_cols = [c for c in data.columns if c not in taken]
            if not x_cols:
                raise ValueError("x: no covariate columns left in data besides y, d and cluster")
        else:
            x_cols = _names(x, "x", allow_list=True)
            _check_columns(data, x_cols, "x")
        y_arr, d_arr, x_arr = _frame_arrays(data, [y_cols, d_cols, x_cols], ["y", "d", "x"])
        y_arr = y_arr[:, 0]
        x_frame = _LazyFrame(data, x_cols)
        c_arr = data[c_cols[0]].to_numpy() if c_cols else None
        y_name, d_names = y_cols[0], d_cols
    else:
        for arg, v in (("y", y), ("d", d), ("x", x), ("cluster", cluster)):
            if isinstance(v, str) or (isinstance(v, (list, tuple)) and v and isinstance(v[0], str)):
                raise ValueError(f"{arg}: got column name(s) but data is None")
        if x is None:
            raise ValueError("x: covariates are required")
        y_arr = as_float_array(y, "y")
        if y_arr.ndim == 2 and y_arr.shape[1] == 1:
            y_arr = y_arr[:, 0]
        if y_arr.ndim != 1:
            raise ValueError(f"y: expected a 1-dimensional array, got shape {y_arr.shape}")
        d_arr = as_float_array(d, "d")
        x_arr = as_float_array(x, "x")
        x_frame = None
        c_arr = None if cluster is None else np.asarray(cluster)
        y_name = "y"
        k = d_arr.shape[1] if d_arr.ndim == 2 else 1
        d_names = ["d"] if k == 1 else [f"d{j + 1}" for j in range(k)]
    n = y_arr.shape[0]
    if d_arr.ndim == 1:
        d_arr = d_arr[:, None]
    if x_arr.ndim == 1:
        x_arr = x_arr[:, None]
    if d_arr.ndim != 2 or d_arr.shape[1] == 0:
        raise ValueError(f"d: expected shape (n,) or (n, k), got {d_arr.shape}")
    if x_arr.ndim != 2 or x_arr.shape[1] == 0:
        raise ValueError(f"x: expected shape (n,) or (n, q), got {x_arr.shape}")
    for arg, arr in (("d", d_arr), ("x", x_arr)):
        if arr.shape[0] != n:
            raise ValueError(f"{arg}: has {arr.shape[0]} rows but y has {n}")
    groups, n_groups = None, 0
    if c_arr is not None:
        if c_arr.ndim != 1 or c_arr.shape[0] != n:
            raise ValueError(f"cluster: expected {n} labels (one per row), got shape {c_arr.shape}")
        codes, uniques = pd.factorize(c_arr)
        if np.any(codes < 0):
            raise ValueError(f"cluster: contains {int(np.sum(codes < 0))} missing label(s)")
        groups, n_groups = codes.astype(np.intp), len(uniques)
    if x_frame is None:
        x_frame = x_arr
    return _Inputs(y=y_arr, d=np.ascontiguousarray(d_arr), x=np.ascontiguousarray(x_arr),
                   x_frame=x_frame, groups=groups, n_groups=n_groups, y_name=y_name,
                   d_names=d_names)


def _draw_folds(inp: _Inputs, root: np.random.SeedSequence, n_folds: int, n_rep: int,
                binary_d: bool) -> list[list[np.ndarray]]:
    """The random sample splits of a fit (stratified by a binary treatment, or by cluster)."""
    n = inp.y.shape[0]
    if inp.groups is not None and inp.n_groups < n_folds:
        raise ValueError(f"n_folds: {n_folds} folds need at least {n_folds} clusters, "
                         f"got {inp.n_groups}")
    if n < 2 * n_folds:
        raise ValueError(f"n_folds: {n_folds} folds need at least {2 * n_folds} rows "
                         f"(2 per fold), got {n}")
    strata = inp.d[:, 0] if (binary_d and inp.groups is None) else None
    fold_seed = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, 0))
    return make_folds(n, n_folds, n_rep, fold_seed, groups=inp.groups, strata=strata)


def _role_external(role: str, external: dict[str, np.ndarray]) -> bool:
    return any(name == role or name.startswith(role) for name in external)


def _external_predictions(predictions: dict[str, Any] | None, folds: Any, model: str, n: int, n_rep: int,
                          k: int) -> dict[str, np.ndarray]:
    """Validate external predictions; return them by spec name, each of shape (n_rep, n)."""
    if predictions is None:
        return {}
    if not isinstance(predictions, dict):
        raise ValueError(f"predictions: expected a dict of arrays by role, got {type(predictions).__name__}")
    if folds is None:
        raise ValueError("predictions: external predictions need the sample splits they were made "
                         "with; pass folds")
    roles = ("ml_g0", "ml_g1", "ml_m") if model == "irm" else ("ml_l", "ml_m")
    out = {}
    for role, value in predictions.items():
        if role not in roles:
            raise ValueError(f"predictions: unknown role {role!r} for model {model!r} (expected {roles})")
        arr = as_float_array(value, f"predictions[{role!r}]")
        multi = model == "plr" and role == "ml_m" and k > 1
        base = 2 if multi else 1
        if arr.ndim == base:
            arr = arr[None]
        want = (n_rep, n, k) if multi else (n_rep, n)
        if arr.shape != want:
            raise ValueError(f"predictions[{role!r}]: expected shape {want[1:]} or {want}, got "
                             f"{np.shape(value)}")
        if model != "irm" and role == "ml_m":
            cols = arr if multi else arr[..., None]
            for j in range(k):
                out[f"ml_m:{j}"] = cols[..., j]
        else:
            out[role] = arr
    return out


def _build_score(model: str, inp: _Inputs, preds: dict[str, np.ndarray], phi: np.ndarray | None,
                 clip: float) -> LinearScore:
    if model == "irm":
        return aipw_ate_score(inp.y, inp.d[:, 0], preds["ml_g0"], preds["ml_g1"], preds["ml_m"], clip)
    m_hat = np.column_stack([preds[f"ml_m:{j}"] for j in range(inp.d.shape[1])])
    if model == "plr":
        return plr_score(inp.y, inp.d, preds["ml_l"], m_hat)
    return rlearner_score(inp.y, inp.d[:, 0], preds["ml_l"], m_hat[:, 0], phi)


def _stack_predictions(preds_by_rep: list[dict[str, np.ndarray]], model: str,
                       d_names: list[str]) -> dict[str, np.ndarray]:
    if model == "irm":
        return {k: np.stack([p[k] for p in preds_by_rep]) for k in ("ml_g0", "ml_g1", "ml_m")}
    out = {"ml_l": np.stack([p["ml_l"] for p in preds_by_rep])}
    m = np.stack([np.column_stack([p[f"ml_m:{j}"] for j in range(len(d_names))])
                  for p in preds_by_rep])
    out["ml_m"] = m[:, :, 0] if (model == "cate_linear" or len(d_names) == 1) else m
    return out
