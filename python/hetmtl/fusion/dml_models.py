"""The models :class:`~hetmtl.fusion.site_dml.SiteDML` estimates, one small class each.

A model names its nuisance roles, says which need probabilities, lists the nuisance functions
to cross-fit, and turns their out-of-fold predictions into the linear orthogonal score. The
estimator itself (inputs, folds, repetitions, aggregation, the site summary) is shared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from .._util.validation import ArgumentError, as_float_array
from .crossfit import NuisanceSpec
from .scores import LinearScore, aipw_ate_score, plr_score, rlearner_score

if TYPE_CHECKING:  # pragma: no cover
    from .site_inputs import SiteInputs

__all__ = ["CATELinear", "DMLModel", "IRM", "MODELS", "PLR", "get_model"]


class DMLModel:
    """What differs between the models of site DML.

    Attributes
    ----------
    name : str
        The ``model`` option that selects the class.
    score_name : str
        The score, as the site summary's metadata names it.
    roles : tuple of str
        Learner arguments the model uses; the first is the outcome learner, ``"ml_m"`` the
        treatment learner. Their order is the order in which named learners are seeded.
    binary_treatment : bool
        The model needs a single treatment column coded 0/1.
    prediction_roles : tuple of str
        Keys of the cross-fitted predictions (and of external ``predictions``).
    """

    name: ClassVar[str]
    score_name: ClassVar[str]
    roles: ClassVar[tuple[str, ...]]
    binary_treatment: ClassVar[bool] = True
    prediction_roles: ClassVar[tuple[str, ...]]

    def needs_propensity(self, role: str) -> bool:
        """Whether the role estimates a propensity score (then it must be a classifier)."""
        return self.binary_treatment and role == "ml_m"

    def nuisances(self, inp: "SiteInputs", learners: dict[str, Any], proba: dict[str, bool]
                  ) -> list[NuisanceSpec]:
        """The nuisance functions to cross-fit; ``proba[role]``: the role's learner is a classifier."""
        raise NotImplementedError

    def score(self, inp: "SiteInputs", preds: dict[str, np.ndarray], phi: np.ndarray | None,
              clip: float) -> LinearScore:
        """The linear score from one repetition's out-of-fold predictions."""
        raise NotImplementedError

    def prediction_shape(self, role: str, n: int, k: int) -> tuple[int, ...]:
        """Shape of one repetition's predictions of ``role`` (k treatment columns)."""
        return (n,)

    def check_predictions(self, predictions: Any, n: int, n_rep: int, k: int) -> dict[str, np.ndarray]:
        """External predictions by role, each brought to shape ``(n_rep, *prediction_shape)``."""
        if not isinstance(predictions, dict):
            raise ArgumentError("predictions", f"expected a dict of arrays by role, got "
                                               f"{type(predictions).__name__}")
        out = {}
        for role, value in predictions.items():
            if role not in self.prediction_roles:
                raise ArgumentError("predictions", f"unknown role {role!r} for model {self.name!r} "
                                                   f"(expected {self.prediction_roles})")
            arr = as_float_array(value, f"predictions[{role!r}]")
            one = self.prediction_shape(role, n, k)
            if arr.ndim == len(one):
                arr = arr[None]
            if arr.shape != (n_rep, *one):
                raise ArgumentError(f"predictions[{role!r}]", f"expected shape {one} or {(n_rep, *one)}, "
                                                              f"got {np.shape(value)}")
            out[role] = arr
        return out

    def stack_predictions(self, preds_by_rep: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Predictions by role over repetitions, each of shape (n_rep, n) or (n_rep, n, k)."""
        return {role: np.stack([p[role] for p in preds_by_rep]) for role in self.prediction_roles}


class _ResidualModel(DMLModel):
    """Models with an outcome regression ``l(X)`` and treatment regressions ``m(X)``."""

    roles = ("ml_l", "ml_m")
    prediction_roles = ("ml_l", "ml_m")

    def nuisances(self, inp, learners, proba):
        specs = [NuisanceSpec("ml_l", learners["ml_l"], inp.y, proba=proba["ml_l"])]
        k = inp.d.shape[1]
        # Several treatment columns: one fit per column, each by a clone of the one ml_m learner.
        labels = tuple(f"ml_m (treatment {name!r})" for name in inp.d_names) if k > 1 else ()
        specs.append(NuisanceSpec("ml_m", learners["ml_m"], inp.d if k > 1 else inp.d[:, 0],
                                  proba=proba["ml_m"], target_name="d", must_vary=True,
                                  column_labels=labels))
        return specs

    def prediction_shape(self, role, n, k):
        return (n, k) if role == "ml_m" and k > 1 else (n,)

    @staticmethod
    def _m_hat(preds: dict[str, np.ndarray], n: int) -> np.ndarray:
        return preds["ml_m"].reshape(n, -1)


class PLR(_ResidualModel):
    """Partially linear model, partialling-out score; several treatment columns are allowed."""

    name = "plr"
    score_name = "partialling out"
    binary_treatment = False

    def score(self, inp, preds, phi, clip):
        return plr_score(inp.y, inp.d, preds["ml_l"], self._m_hat(preds, inp.y.size))


class CATELinear(_ResidualModel):
    """Linear conditional average treatment effect of a binary treatment (R-learner)."""

    name = "cate_linear"
    score_name = "R-learner"

    def score(self, inp, preds, phi, clip):
        m_hat = self._m_hat(preds, inp.y.size)[:, 0]
        return rlearner_score(inp.y, inp.d[:, 0], preds["ml_l"], m_hat, phi)


class IRM(DMLModel):
    """Average treatment effect of a binary treatment, AIPW score."""

    name = "irm"
    score_name = "ATE (AIPW)"
    roles = ("ml_g", "ml_m")
    prediction_roles = ("ml_g0", "ml_g1", "ml_m")

    def nuisances(self, inp, learners, proba):
        a = inp.d[:, 0]
        # The outcome regression is fitted separately on the controls and the treated.
        return [
            NuisanceSpec("ml_g0", learners["ml_g"], inp.y, proba=proba["ml_g"], subset=a == 0,
                         target_name="d", subset_name="controls (d == 0)"),
            NuisanceSpec("ml_g1", learners["ml_g"], inp.y, proba=proba["ml_g"], subset=a == 1,
                         target_name="d", subset_name="treated (d == 1)"),
            NuisanceSpec("ml_m", learners["ml_m"], a, proba=True, target_name="d", must_vary=True),
        ]

    def score(self, inp, preds, phi, clip):
        return aipw_ate_score(inp.y, inp.d[:, 0], preds["ml_g0"], preds["ml_g1"], preds["ml_m"], clip)


_BY_NAME: dict[str, DMLModel] = {cls.name: cls() for cls in (PLR, IRM, CATELinear)}
MODELS = tuple(_BY_NAME)


def get_model(name: str) -> DMLModel:
    """The model class instance of a ``model`` option (already checked against :data:`MODELS`)."""
    return _BY_NAME[name]
