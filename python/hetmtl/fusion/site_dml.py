"""Per-site double machine learning: cross-fitted nuisances, a linear orthogonal score, a summary.

:class:`SiteDML` is what each site runs on its own rows. Besides the usual estimate, standard
error and confidence interval it produces :attr:`SiteDML.summary_`, the
:class:`~hetmtl.fusion.summary.SiteSummary` that the site sends to the center (no row-level data).
What differs between the models (PLR, IRM, linear CATE) lives in :mod:`hetmtl.fusion.dml_models`,
the input checks in :mod:`hetmtl.fusion.site_inputs`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.base import BaseEstimator, is_classifier, is_regressor
from sklearn.utils.validation import check_is_fitted

from .. import __version__
from .._util.display import ReportDisplay
from .._util.seeds import as_seed_sequence
from .._util.validation import ArgumentError, check_choice, check_fraction, check_int, check_number
from ..persist.mixin import Persistable
from .crossfit import check_folds, crossfit_predict
from .display import site_dml_report
from .dml_models import MODELS, DMLModel, get_model
from .learners import LEARNERS, role_learners
from .row_guards import check_row_leverage, clip_to_targets
from .scores import LinearScore, sandwich
from .site_inputs import SiteInputs, collect_inputs, draw_folds, is_binary01, make_basis
from .summary import FoldSummary, SiteSummary
from .summary_privacy import private_summary

__all__ = ["MODELS", "SiteDML"]

# DoubleML aggregates repeated cross-fitting with this fixed critical value (not the level's).
_AGG_CRIT = 1.96


@dataclass
class _Repetitions:
    """Per-repetition results of a fit."""

    coef: np.ndarray        # (n_rep, p)
    se: np.ndarray          # (n_rep, p)
    J: np.ndarray           # (n_rep, p, p)
    V: np.ndarray           # (n_rep, p, p)
    first_score: LinearScore
    first_moments: tuple[np.ndarray, np.ndarray]
    predictions: list[dict[str, np.ndarray]]


class SiteDML(ReportDisplay, Persistable, BaseEstimator):
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
    ml_l : estimator or str, optional
        Learner of ``l(X) = E[Y | X]`` (``"plr"``, ``"cate_linear"``). A classifier is accepted for
        an outcome coded 0/1 (its ``predict_proba`` is used). A name of
        :data:`~hetmtl.fusion.learners.LEARNERS` (``"rf"``, ``"gbm"``, ``"lasso"``, ``"linear"``)
        takes that learner from :mod:`hetmtl.fusion.learners`; None means ``"rf"``.
    ml_m : estimator or str, optional
        Learner of ``m(X) = E[D | X]``. ``"plr"``: a regressor, or a classifier for treatments coded
        0/1 (one clone per treatment column). ``"irm"``, ``"cate_linear"``: a classifier (the
        propensity score).
    ml_g : estimator or str, optional
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
    learner_args : dict, optional
        Parameters that replace the defaults of the named learners (e.g.
        ``{"n_estimators": 500}``); an error when no learner is given by name.
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
        The (unfitted) learners by role; a role whose predictions were all passed to :meth:`fit`
        did not use its learner (see ``nuisance_sources_``).
    nuisance_sources_ : dict of str
        Where each role's out-of-fold predictions came from: ``"supplied predictions"`` (the
        ``predictions`` argument of :meth:`fit`) or the class name of the learner cross-fitted
        for it (for ``"irm"``'s ``"ml_g"`` with only one of ``"ml_g0"``, ``"ml_g1"`` supplied, both,
        e.g. ``"supplied predictions (ml_g0) and RandomForestRegressor (ml_g1)"``). The summary's
        ``metadata["learners"]`` says the same with ``"external"`` for supplied predictions.
    predictions_ : dict
        Cross-fitted nuisance predictions by role, each of shape (n_rep, n) (``"ml_m"`` of
        ``"plr"``: (n_rep, n, k) for k treatment columns). Propensities are stored as the learner
        predicted them, before clipping.
    linear_score_ : LinearScore
        The score of the first repetition on all rows (the site's own; never sent), from which
        :meth:`private_summary` releases a differentially private summary.
    summary_ : SiteSummary
        What the site sends to the center: ``theta = coef_``, ``J``, ``Omega``, ``n``, fold
        summaries of the first repetition, metadata. ``summary_.cov`` equals ``cov_``.

    Notes
    -----
    Named learners (and the default ``"rf"``, 100 trees with at least 5 rows per leaf) come from
    :func:`~hetmtl.fusion.learners.make_learners`' rule: a classifier where the role's target is
    coded 0/1 (always for the propensity of ``"irm"`` and ``"cate_linear"``), a regressor
    otherwise, each role seeded from child stream 1 of ``random_state`` (the folds use stream 0).

    Folds are drawn at random; with a binary treatment (single column coded 0/1) and no clusters
    they are stratified by treatment. With ``cluster`` every cluster lies in one fold and the
    score covariance is cluster-robust, ``Omega = (1/n) sum_c S_c S_c'`` with ``S_c`` the sum of
    the scores of cluster c.

    Differences from DoubleML: with several treatment columns ``"plr"`` estimates them jointly
    (DoubleML fits one treatment at a time with the others among the covariates); with clusters
    the standard errors are the one-way cluster-robust sandwich above.
    """

    # Row-level results stay at the site: a saved fit keeps its summary, estimates and tables.
    # linear_score_ holds every row's residuals and raw treatment (under "cate_linear" the treated
    # rows' basis covariates): a loaded fit cannot make a private summary, refit for that.
    _persist_exclude = ("predictions_", "folds_", "linear_score_")

    def __init__(self, model: str = "plr", ml_l: Any = None, ml_m: Any = None, ml_g: Any = None,
                 n_folds: int = 5, n_rep: int = 1, basis: Sequence[str] | Callable | None = None,
                 clip: float = 0.01, site: str = "site",
                 random_state: int | np.random.SeedSequence | None = None,
                 learner_args: dict[str, Any] | None = None) -> None:
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
        self.learner_args = learner_args

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
        spec = get_model(check_choice(self.model, "model", MODELS))
        n_folds, n_rep, clip, site = self._check_params()
        inp = collect_inputs(data, y, d, x, cluster)
        _check_treatment(spec, inp, site)
        phi, phi_names = make_basis(self.basis, data, inp) if spec.name == "cate_linear" else (None, None)
        if spec.name != "cate_linear" and self.basis is not None:
            raise ArgumentError("basis", f"only used by model 'cate_linear', not by {spec.name!r}")
        root = as_seed_sequence(self.random_state)
        learners = self._learners(spec, inp, root)
        if folds is None:
            all_tests = draw_folds(inp, root, n_folds, n_rep)
        else:
            all_tests = check_folds(folds, inp.y.shape[0], inp.groups)
            n_folds, n_rep = len(all_tests[0]), len(all_tests)
        external = {}
        if predictions is not None:
            if folds is None:
                raise ArgumentError("predictions", "external predictions need the sample splits they "
                                                   "were made with; pass folds")
            external = spec.check_predictions(predictions, inp.y.shape[0], n_rep, inp.d.shape[1])
        proba = {role: _is_clf(est) for role, est in learners.items()}
        nuisances = spec.nuisances(inp, learners, proba)
        external = clip_to_targets(external, {sp.name: sp.target for sp in nuisances}, site)
        specs = [sp for sp in nuisances if sp.name not in external]
        reps = _fit_repetitions(spec, inp, specs, external, all_tests, phi, clip, site)
        names = list(phi_names) if spec.name == "cate_linear" else list(inp.d_names)
        self._store(spec, inp, reps, learners, set(external), all_tests, names, clip, site)
        return self

    def _store(self, spec: DMLModel, inp: SiteInputs, reps: _Repetitions, learners: dict[str, Any],
               external: set[str], all_tests: list[list[np.ndarray]], names: list[str],
               clip: float, site: str) -> None:
        """Set the fitted attributes and the site summary."""
        n, n_rep = inp.y.shape[0], len(all_tests)
        coef, se, cov, J, Omega = _aggregate(reps, n)
        metadata = {
            "model": spec.name,
            "score": spec.score_name,
            "learners": _nuisance_sources(spec, learners, external, supplied="external"),
            "n_folds": len(all_tests[0]),
            "n_rep": int(n_rep),
            "clip": float(clip),
            "cluster": inp.groups is not None,
            "n_clusters": int(inp.n_groups) if inp.groups is not None else None,
            "outcome": inp.y_name,
            "hetmtl_version": __version__,
        }
        if spec.name == "cate_linear":
            metadata["basis"] = names
        folds = self._fold_summaries(reps.first_score, all_tests[0], inp.groups, site)
        self.summary_ = SiteSummary(theta=coef, J=J, Omega=Omega, n=n, site=site, model=spec.name,
                                    coef_names=names, folds=folds, metadata=metadata)
        self.coef_, self.se_, self.cov_, self.coef_names_ = coef, se, cov, names
        self.n_obs_ = int(n)
        self.n_clusters_ = int(inp.n_groups) if inp.groups is not None else None
        self.n_folds_, self.n_rep_ = len(all_tests[0]), int(n_rep)
        self.all_coef_, self.all_se_ = reps.coef, reps.se
        self.folds_ = all_tests
        self.learners_ = learners
        self.nuisance_sources_ = _nuisance_sources(spec, learners, external,
                                                   supplied="supplied predictions")
        self.predictions_ = spec.stack_predictions(reps.predictions)
        self.linear_score_ = reps.first_score

    def _check_params(self) -> tuple[int, int, float, str]:
        check_int(self.n_folds, "n_folds", minimum=2, integer_type=True)
        check_int(self.n_rep, "n_rep", minimum=1, integer_type=True)
        check_number(self.clip, "clip", low=0.0, high=0.5, high_open=True)
        if not isinstance(self.site, str) or not self.site:
            raise ArgumentError("site", f"must be a non-empty string, got {self.site!r}")
        if self.learner_args is not None and not isinstance(self.learner_args, dict):
            raise ArgumentError("learner_args", f"expected a dict of learner parameters, got "
                                                f"{type(self.learner_args).__name__}")
        return int(self.n_folds), int(self.n_rep), float(self.clip), self.site

    def _learners(self, spec: DMLModel, inp: SiteInputs, root: np.random.SeedSequence) -> dict[str, Any]:
        given = {"ml_l": self.ml_l, "ml_m": self.ml_m, "ml_g": self.ml_g}
        for role, est in given.items():
            if role not in spec.roles and est is not None:
                raise ArgumentError(role, f"not used by model {spec.name!r} (it uses "
                                          f"{' and '.join(spec.roles)})")
            if isinstance(est, str) and est not in LEARNERS:
                raise ArgumentError(role, f"must be an estimator or one of {LEARNERS}, got {est!r}")
        # Default learners get seeds from their own stream, independent of the folds'.
        named = {role: "rf" if given[role] is None else given[role] for role in spec.roles}
        binary_d = all(is_binary01(inp.d[:, j]) for j in range(inp.d.shape[1]))
        out = role_learners(named, spec.name, binary_outcome=is_binary01(inp.y),
                            binary_treatment=binary_d, root=root, params=self.learner_args)
        for role, est in out.items():
            _check_learner(spec, role, est, inp)
        return out

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

    def private_summary(self, privacy: Any, policy: Any = None) -> SiteSummary:
        """The site summary released under differential privacy (instead of ``summary_``).

        Parameters
        ----------
        privacy : SummaryPrivacy
            The site's (epsilon, delta) and clipping bounds; see
            :mod:`hetmtl.fusion.summary_privacy` for the mechanism and what it covers.
        policy : DisclosurePolicy, optional
            The site's policy; with a ledger the release counts against its budget.

        Returns
        -------
        SiteSummary
            Noisy estimate and moments, with the noise's variance in the released covariance
            and no fold summaries.
        """
        check_is_fitted(self, "coef_")
        if not hasattr(self, "linear_score_"):
            raise RuntimeError("private_summary: this fit was loaded from a file, which keeps no "
                               "row-level scores; fit the site's data again to release a private summary")
        if self.n_rep_ != 1:
            raise ArgumentError("n_rep", "a private summary is released from one sample split; fit "
                                         f"with n_rep=1 (got {self.n_rep_})")
        return private_summary(self.linear_score_, privacy, site=self.summary_.site,
                               model=self.summary_.model, coef_names=self.coef_names_,
                               metadata=dict(self.summary_.metadata), policy=policy)

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
        inp = collect_inputs(data, y, d, x, cluster)
        return draw_folds(inp, as_seed_sequence(self.random_state), n_folds, n_rep)

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
        alpha = 1.0 - check_fraction(level, "level")
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

    def _display_report(self):
        return site_dml_report(self)


# ---------------------------------------------------------------------- helpers
def _is_clf(est: Any) -> bool:
    return bool(is_classifier(est) or (hasattr(est, "predict_proba") and not is_regressor(est)))


def _nuisance_sources(spec: DMLModel, learners: dict[str, Any], external: set[str],
                      supplied: str) -> dict[str, str]:
    """Where each learner role's predictions came from: ``supplied`` when they were passed to
    ``fit``, the learner's class name when it was cross-fitted, both (by prediction) when mixed."""
    out = {}
    for role, est in learners.items():
        # A role's predictions: its own name, or named after it ("ml_g" -> "ml_g0", "ml_g1").
        keys = [k for k in spec.prediction_roles if k.startswith(role)]
        given = [k for k in keys if k in external]
        if len(given) in (0, len(keys)):
            out[role] = supplied if given else type(est).__name__
        else:
            out[role] = " and ".join(f"{supplied if k in external else type(est).__name__} ({k})"
                                     for k in keys)
    return out


def _check_treatment(spec: DMLModel, inp: SiteInputs, site: str) -> None:
    for j, name in enumerate(inp.d_names):
        if inp.d.shape[0] > 1 and np.ptp(inp.d[:, j]) == 0:
            # Said here, before cross-fitting: the folds' message would suggest fewer folds.
            raise ArgumentError("d", f"treatment {name!r} is constant over all {inp.d.shape[0]} rows "
                                     f"of site {site!r} (every value is {inp.d[0, j]:g}), so its "
                                     "effect cannot be estimated at this site with any number of "
                                     "folds; check the column, or leave the site out")
    if not spec.binary_treatment:
        return
    if inp.d.shape[1] != 1:
        raise ArgumentError("d", f"model {spec.name!r} needs a single binary treatment column coded "
                                 f"0/1, got {inp.d.shape[1]} columns")
    if not inp.binary_treatment:
        bad = inp.d[(inp.d[:, 0] != 0) & (inp.d[:, 0] != 1), 0][0]
        raise ArgumentError("d", f"model {spec.name!r} needs a binary treatment coded 0/1, found the "
                                 f"value {bad:g}")


def _check_learner(spec: DMLModel, role: str, est: Any, inp: SiteInputs) -> None:
    """A learner must fit and predict; a classifier needs a 0/1 target and predict_proba."""
    if not hasattr(est, "fit"):
        raise ArgumentError(role, f"expected a scikit-learn estimator with a fit method, got "
                                  f"{type(est).__name__}")
    clf = _is_clf(est)
    wants_proba = spec.needs_propensity(role)
    if wants_proba and not (clf and hasattr(est, "predict_proba")):
        raise ArgumentError(role, f"model {spec.name!r} needs a classifier with predict_proba for "
                                  f"the propensity score, got {type(est).__name__}")
    if clf and not wants_proba:
        if not hasattr(est, "predict_proba"):
            raise ArgumentError(role, f"classifier {type(est).__name__} has no predict_proba")
        if role == "ml_m" and not all(is_binary01(inp.d[:, j]) for j in range(inp.d.shape[1])):
            raise ArgumentError(role, f"a classifier needs treatments coded 0/1; use a regressor "
                                      "for a continuous treatment")
        if role in ("ml_l", "ml_g") and not is_binary01(inp.y):
            raise ArgumentError(role, f"a classifier needs an outcome coded 0/1; use a regressor "
                                      "for a continuous outcome")
    if not clf and not hasattr(est, "predict"):
        raise ArgumentError(role, f"{type(est).__name__} has no predict method")


def _fit_repetitions(spec: DMLModel, inp: SiteInputs, specs: list, external: dict[str, np.ndarray],
                     all_tests: list[list[np.ndarray]], phi: np.ndarray | None, clip: float,
                     site: str) -> _Repetitions:
    """Cross-fit and solve the score once per repetition of the sample split."""
    n, n_rep = inp.y.shape[0], len(all_tests)
    p = inp.d.shape[1] if phi is None else phi.shape[1]
    coef, se = np.empty((n_rep, p)), np.empty((n_rep, p))
    J_all, V_all = np.empty((n_rep, p, p)), np.empty((n_rep, p, p))
    preds_by_rep, first = [], None
    for r, tests in enumerate(all_tests):
        preds = crossfit_predict(specs, inp.x, tests, rep=r) if specs else {}
        preds.update({name: arr[r] for name, arr in external.items()})
        preds_by_rep.append(preds)
        score = spec.score(inp, preds, phi, clip)
        check_row_leverage(score, site)  # every repetition enters the released summary
        theta = score.solve(site=site)
        J, Omega = score.moments(theta, groups=inp.groups)
        _check_omega(Omega, site, "")
        V = sandwich(J, Omega, n)
        coef[r], se[r], J_all[r], V_all[r] = theta, np.sqrt(np.diag(V)), J, V
        if r == 0:
            first = (score, (J, Omega))
    return _Repetitions(coef, se, J_all, V_all, first[0], first[1], preds_by_rep)


def _aggregate(reps: _Repetitions, n: int) -> tuple[np.ndarray, ...]:
    """Estimate, standard errors, covariance and moments over the repetitions (DoubleML's median
    aggregation when there are several)."""
    if reps.coef.shape[0] == 1:
        J, Omega = reps.first_moments
        return reps.coef[0], reps.se[0], reps.V[0], J, Omega
    coef = np.median(reps.coef, axis=0)
    se = (np.median(reps.coef + _AGG_CRIT * reps.se, axis=0) - coef) / _AGG_CRIT
    Vbar = reps.V.mean(axis=0)
    sd = np.sqrt(np.diag(Vbar))
    cov = (Vbar / np.outer(sd, sd)) * np.outer(se, se)
    cov = 0.5 * (cov + cov.T)
    # Moments consistent with the aggregated covariance: J^-1 Omega J^-T / n == cov.
    J = reps.J.mean(axis=0)
    Omega = n * J @ cov @ J.T
    return coef, se, cov, J, 0.5 * (Omega + Omega.T)


def _check_omega(Omega: np.ndarray, site: str, where: str) -> None:
    eig = np.linalg.eigvalsh(Omega)
    if not (eig[-1] > 0 and eig[0] > 1e-12 * eig[-1]):
        raise ValueError(f"site {site!r}: the score covariance Omega{where} is not positive definite "
                         "(the residuals vanish or the scores are collinear)")
