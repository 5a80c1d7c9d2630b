"""Named nuisance learners: one registry for the Python API, the ``hetmtl`` command and R.

A learner name means one pair of scikit-learn estimators everywhere: a regressor for conditional
means and a classifier for conditional probabilities (a 0/1 outcome or treatment, a propensity
score). The names and their settings:

``"rf"``
    Random forests, 100 trees with at least 5 rows per leaf (the default of
    :class:`~hetmtl.fusion.site_dml.SiteDML`). 100 trees rather than more: site estimates are
    averaged over folds and sites, and the forest's own noise is small beside the sampling noise.
``"gbm"``
    Gradient boosting (scikit-learn's exact ``GradientBoosting*``), 100 rounds of depth-3 trees,
    learning rate 0.05, at least 20 rows per leaf. Shallow trees and a small learning rate because
    larger ones overfit propensity scores on site-sized samples and push them to 0 and 1. The exact
    booster, not the histogram one, because sites are small and its results do not depend on
    binning.
``"lasso"``
    Covariates standardized, then the lasso with a 5-fold cross-validated penalty, or
    L1-penalized logistic regression with a 5-fold cross-validated penalty (log-loss).
``"linear"``
    Unpenalized least squares, or unpenalized logistic regression (``C=inf``): the plain linear
    working model, as the name says. Covariates are not rescaled (an unpenalized fit does not
    depend on their scale); ``"lasso"`` is the penalized choice.

Keyword overrides go to the estimator itself (the last step of a pipeline), so
``make_learner("rf", n_estimators=500)`` is a 500-tree forest with the other settings kept.

Seeds: :func:`make_learners` seeds the roles from child stream 1 of ``random_state`` (child
stream 0 draws the folds), so ``SiteDML(random_state=s, **make_learners(name, ..., random_state=s))``
is what ``SiteDML(ml_l=name, ml_m=name, random_state=s)`` fits, in every front end.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from .._util.seeds import as_seed_sequence, child_seed, int_seeds
from .._util.validation import ArgumentError, check_choice
from .dml_models import MODELS, get_model

__all__ = ["LEARNERS", "LEARNER_KINDS", "LEARNER_SEED_KEY", "Learner", "REGISTRY",
           "final_estimator", "learner_defaults", "make_learner", "make_learners"]

LEARNER_KINDS = ("regressor", "classifier")
# Child stream of a fit's random_state that seeds its named learners (stream 0 draws the folds).
LEARNER_SEED_KEY = 1


@dataclass(frozen=True)
class Learner:
    """One registry entry: factories of the regressor and of the classifier.

    Each factory takes ``random_state`` (an int or None) and returns an unfitted estimator.
    """

    name: str
    regressor: Callable[[int | None], Any]
    classifier: Callable[[int | None], Any]
    summary: str


def _rf_regressor(seed: int | None) -> Any:
    from sklearn.ensemble import RandomForestRegressor
    return RandomForestRegressor(n_estimators=100, min_samples_leaf=5, random_state=seed)


def _rf_classifier(seed: int | None) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    return RandomForestClassifier(n_estimators=100, min_samples_leaf=5, random_state=seed)


_GBM = {"n_estimators": 100, "learning_rate": 0.05, "max_depth": 3, "min_samples_leaf": 20}


def _gbm_regressor(seed: int | None) -> Any:
    from sklearn.ensemble import GradientBoostingRegressor
    return GradientBoostingRegressor(**_GBM, random_state=seed)


def _gbm_classifier(seed: int | None) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier
    return GradientBoostingClassifier(**_GBM, random_state=seed)


def _standardized(estimator: Any) -> Any:
    # Penalties are only comparable across covariates on a common scale.
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), estimator)


def _lasso_regressor(seed: int | None) -> Any:
    from sklearn.linear_model import LassoCV
    return _standardized(LassoCV(cv=5, random_state=seed))


def _lasso_classifier(seed: int | None) -> Any:
    from sklearn.linear_model import LogisticRegressionCV

    params = inspect.signature(LogisticRegressionCV).parameters
    kw: dict[str, Any] = {"Cs": 10, "cv": 5, "solver": "saga", "scoring": "neg_log_loss",
                          "max_iter": 5000, "random_state": seed}  # saga shuffles: seeded
    # scikit-learn >= 1.8 selects the L1 penalty through l1_ratios and deprecates `penalty`.
    if params["penalty"].default == "deprecated":
        kw["l1_ratios"] = (1.0,)
    else:
        kw["penalty"] = "l1"
    if "use_legacy_attributes" in params:
        kw["use_legacy_attributes"] = False
    return _standardized(LogisticRegressionCV(**kw))


def _linear_regressor(seed: int | None) -> Any:
    from sklearn.linear_model import LinearRegression
    return LinearRegression()


def _linear_classifier(seed: int | None) -> Any:
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=np.inf, max_iter=1000)


REGISTRY: dict[str, Learner] = {
    "rf": Learner("rf", _rf_regressor, _rf_classifier,
                  "random forests (100 trees, at least 5 rows per leaf)"),
    "gbm": Learner("gbm", _gbm_regressor, _gbm_classifier,
                   "gradient boosting (100 rounds of depth-3 trees, learning rate 0.05)"),
    "lasso": Learner("lasso", _lasso_regressor, _lasso_classifier,
                     "cross-validated lasso / L1-penalized logistic regression"),
    "linear": Learner("linear", _linear_regressor, _linear_classifier,
                      "unpenalized least squares / logistic regression"),
}
LEARNERS = tuple(REGISTRY)


def final_estimator(estimator: Any) -> Any:
    """The estimator that takes a learner's parameters: the last step of a pipeline, else itself."""
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def make_learner(name: str, kind: str = "regressor", *, random_state: int | None = None,
                 **params: Any) -> Any:
    """A named learner, unfitted.

    Parameters
    ----------
    name : {"rf", "gbm", "lasso", "linear"}
        The learner (see the module docstring for what each name means).
    kind : {"regressor", "classifier"}, default "regressor"
        A regressor of a conditional mean or a classifier of a conditional probability.
    random_state : int or None
        Seed of the randomized learners (ignored by ``"linear"``).
    **params
        Parameters of the estimator (the last step of a pipeline) that replace the defaults. A
        whole float for an integer parameter is taken as that integer (R passes doubles).

    Returns
    -------
    estimator
        A scikit-learn estimator.
    """
    check_choice(name, "learner", LEARNERS)
    check_choice(kind, "kind", LEARNER_KINDS)
    if random_state is not None and (isinstance(random_state, bool)
                                     or not isinstance(random_state, (int, np.integer))):
        raise ArgumentError("random_state", f"expected None or an int, got {random_state!r}")
    entry = REGISTRY[name]
    estimator = (entry.classifier if kind == "classifier" else entry.regressor)(
        None if random_state is None else int(random_state))
    if params:
        target = final_estimator(estimator)
        defaults = target.get_params(deep=False)
        unknown = [k for k in params if k not in defaults]
        if unknown:
            raise ArgumentError("learner_args", f"unknown parameter(s) {', '.join(map(repr, unknown))} "
                                                f"of {type(target).__name__} (learner {name!r})")
        target.set_params(**{k: _like_default(v, defaults[k]) for k, v in params.items()})
    return estimator


def _like_default(value: Any, default: Any) -> Any:
    # R numbers arrive as floats; an integer parameter gets the integer of a whole float.
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float) \
            and value.is_integer():
        return int(value)
    return value


def learner_defaults(name: str, kind: str = "regressor") -> dict[str, Any]:
    """The parameters :func:`make_learner` gives the estimator of ``name`` (before overrides)."""
    return final_estimator(make_learner(name, kind)).get_params(deep=False)


def make_learners(name: str, model: str, *, binary_outcome: bool, binary_treatment: bool,
                  random_state: int | np.random.SeedSequence | None = None,
                  **params: Any) -> dict[str, Any]:
    """The nuisance learners of a :class:`~hetmtl.fusion.site_dml.SiteDML` fit, by role.

    Parameters
    ----------
    name : {"rf", "gbm", "lasso", "linear"}
        The learner of every role.
    model : {"plr", "irm", "cate_linear"}
        Decides the roles: ``ml_l`` and ``ml_m`` (``"plr"``, ``"cate_linear"``) or ``ml_g`` and
        ``ml_m`` (``"irm"``).
    binary_outcome : bool
        The outcome is coded 0/1: the outcome learner is then a classifier (probabilities).
    binary_treatment : bool
        Every treatment column is coded 0/1: ``ml_m`` is then a classifier (a propensity score).
        Required for ``"irm"`` and ``"cate_linear"``.
    random_state : int, SeedSequence or None
        The fit's seed: each role is seeded from its child stream :data:`LEARNER_SEED_KEY`, as
        ``SiteDML`` seeds its named learners.
    **params
        Overrides of the learner's defaults (see :func:`make_learner`).

    Returns
    -------
    dict
        ``{"ml_l" or "ml_g": estimator, "ml_m": estimator}``, unfitted.
    """
    check_choice(name, "learner", LEARNERS)
    spec = get_model(check_choice(model, "model", MODELS))
    if spec.binary_treatment and not binary_treatment:
        raise ArgumentError("d", f"model {model!r} needs a single treatment coded 0/1")
    return role_learners({role: name for role in spec.roles}, model, binary_outcome=binary_outcome,
                         binary_treatment=binary_treatment,
                         root=as_seed_sequence(random_state), params=params)


def role_learners(given: Mapping[str, Any], model: str, *, binary_outcome: bool,
                  binary_treatment: bool, root: np.random.SeedSequence,
                  params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Resolve learner names by role; estimator objects are passed through.

    A named learner is a classifier where its target is coded 0/1 (or the model needs a
    propensity score) and a regressor otherwise; role j is seeded with the j-th of two seeds from
    child stream :data:`LEARNER_SEED_KEY` of ``root``.
    """
    spec = get_model(model)
    named = [role for role in spec.roles if isinstance(given.get(role), str)]
    if params and not named:
        raise ArgumentError("learner_args", "only used by named learners; set the parameters of a "
                                            "learner object on the object itself")
    seeds = int_seeds(child_seed(root, LEARNER_SEED_KEY), len(spec.roles))
    out = {}
    for seed, role in zip(seeds, spec.roles):
        est = given.get(role)
        if role in named:
            binary = binary_treatment if role == "ml_m" else binary_outcome
            kind = "classifier" if binary or spec.needs_propensity(role) else "regressor"
            est = make_learner(est, kind, random_state=seed, **dict(params or {}))
        out[role] = est
    return out
