"""Differential privacy of released site summaries: the Gaussian mechanism on clipped score sums.

A site that wants a formal guarantee against differencing and reconstruction releases its
summary through :func:`private_summary` with a :class:`SummaryPrivacy` it sets itself. Every score
here is linear, ``psi_i(theta) = dt_i (yt_i - dt_i' theta)``, so the summary is a function of
three sums over rows, each released with Gaussian noise:

1. ``G = sum dt_i dt_i'``, ``b = sum dt_i yt_i`` and the row count, with each row's regressor
   clipped to ``||dt_i|| <= regressor_bound`` and its outcome to ``|yt_i| <= outcome_bound``; one
   row moves them by at most ``sqrt(C_d^4 + C_d^2 C_y^2 + 1)`` in L2 (a symmetric matrix is
   released as its upper triangle). Then ``theta = G^-1 b`` and ``J = -G / n``.
2. ``S = sum psi_i psi_i'`` at that (already private) theta, residuals clipped to the outcome
   bound: sensitivity ``C_d^2 C_y^2``. Then ``Omega = S / n``.

The two releases compose adaptively as Gaussian differential privacy (Dong, Roth and Su, 2022):
a Gaussian mechanism with sensitivity s and noise sigma is ``mu = s / sigma``-GDP, the releases
together are ``sqrt(mu_1^2 + mu_2^2)``-GDP, and mu-GDP is exactly the (epsilon, delta) curve of
the analytic Gaussian mechanism (:func:`~hetmtl.fusion.privacy.gaussian_sigma`), so the site's
(epsilon, delta) fixes mu and each release gets ``mu / sqrt(2)``.

**Honest standard errors.** The noise moves theta by about ``G^-1 (e_b - E theta)`` (``e_b``
the noise on b, E on G). Its covariance is added to the released covariance through Omega
(``Omega + n J V_noise J'``), so intervals the center builds from the summary cover the noisy
estimate's target at their nominal level.

**What the guarantee covers.** The score's nuisance predictions are taken as given. When they
come from private nuisance fusion (private grid sums), the whole release is private by
composition (the epsilons add up in the site's ledger); with the site's own cross-fitted learners
one row also moves other rows' predictions, which the guarantee does not bound. Fold summaries
are never released with a private summary (each would spend budget), so the center chooses the
fusion penalty without cross-validating on this site.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._util.validation import ArgumentError, check_number
from .disclosure import DisclosurePolicy
from .privacy import gaussian_sigma
from .scores import LinearScore
from .summary import SiteSummary

__all__ = ["SummaryPrivacy", "private_summary"]

_RELEASES = 2  # the sums of stage 1 and the score covariance of stage 2


@dataclass(frozen=True)
class SummaryPrivacy:
    """(epsilon, delta) differential privacy the site grants one released summary.

    Parameters
    ----------
    epsilon : float
        Privacy loss, > 0 (smaller is more private and noisier).
    regressor_bound : float
        Clipping norm ``C_d`` of each row's residualized regressor ``dt_i`` (PLR: the treatment
        minus its prediction; R-learner: that residual times the basis). A few standard deviations
        of the residual keeps clipping rare.
    outcome_bound : float
        Clipping bound ``C_y`` of each row's residualized outcome (and score residual).
    delta : float, default 1e-6
        Probability of exceeding ``epsilon``, in (0, 1); keep it well below 1 / n.
    random_state : int, optional
        Seed of the noise, for simulation studies only; leave it None wherever the rows are real
        (a repeated seed repeats the noise, and differencing two releases cancels it).
    """

    epsilon: float
    regressor_bound: float
    outcome_bound: float
    delta: float = 1e-6
    random_state: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", check_number(self.epsilon, "epsilon", low=0, low_open=True))
        object.__setattr__(self, "delta", check_number(self.delta, "delta", low=0, high=1, low_open=True,
                                                       high_open=True))
        for name in ("regressor_bound", "outcome_bound"):
            object.__setattr__(self, name, check_number(getattr(self, name), name, low=0, low_open=True))

    def noise_scales(self) -> tuple[float, float]:
        """Noise standard deviations of the two releases (see the module notes); the bounds are
        on norms, so they hold for any number of coefficients."""
        mu = 1.0 / gaussian_sigma(self.epsilon, self.delta, 1.0)
        mu_each = mu / np.sqrt(_RELEASES)
        c_d, c_y = self.regressor_bound, self.outcome_bound
        sens_sums = np.sqrt(c_d**4 + c_d**2 * c_y**2 + 1.0)
        sens_cov = c_d**2 * c_y**2
        return float(sens_sums / mu_each), float(sens_cov / mu_each)

    def to_metadata(self, sigmas: Sequence[float]) -> dict[str, Any]:
        """The ``privacy`` entry of the released summary's metadata."""
        return {"mechanism": "gaussian", "epsilon": self.epsilon, "delta": self.delta,
                "regressor_bound": self.regressor_bound, "outcome_bound": self.outcome_bound,
                "sigma": [float(s) for s in sigmas]}


def _noisy_symmetric(M: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``M`` plus Gaussian noise on its upper triangle, mirrored (one draw per free entry)."""
    p = M.shape[0]
    E = np.triu(rng.normal(scale=sigma, size=(p, p)))
    return M + E + np.triu(E, 1).T


def _g_noise_cov(theta: np.ndarray, sigma: float) -> np.ndarray:
    """Covariance of ``E theta`` for symmetric E with independent N(0, sigma^2) free entries."""
    return sigma**2 * (np.dot(theta, theta) * np.eye(theta.size) + np.outer(theta, theta)
                       - np.diag(theta**2))


def private_summary(score: LinearScore, privacy: SummaryPrivacy, *, site: str, model: str,
                    coef_names: Sequence[str], metadata: dict | None = None,
                    policy: DisclosurePolicy | None = None) -> SiteSummary:
    """A site summary released under (epsilon, delta) differential privacy.

    Parameters
    ----------
    score : LinearScore
        The site's linear score on its cross-fitted nuisances (all rows).
    privacy : SummaryPrivacy
        The site's privacy setting.
    site, model, coef_names, metadata
        Descriptive fields of the summary.
    policy : DisclosurePolicy, optional
        With a ledger, the release is checked against ``max_releases`` and ``total_epsilon`` and
        recorded (kind ``"site_summary"``), sharing the budget of private grid summaries.

    Returns
    -------
    SiteSummary
        Without fold summaries; ``metadata["privacy"]`` records the mechanism and its noise.
    """
    if not isinstance(privacy, SummaryPrivacy):
        raise ArgumentError("privacy", f"expected a SummaryPrivacy, got {type(privacy).__name__}")
    if policy is not None:
        policy.check_release(privacy.epsilon)
    dt, yt = score.dt, score.yt
    n_rows, p = dt.shape
    norms = np.linalg.norm(dt, axis=1)
    dtc = dt * np.minimum(1.0, privacy.regressor_bound / np.maximum(norms, 1e-300))[:, None]
    ytc = np.clip(yt, -privacy.outcome_bound, privacy.outcome_bound)
    sigma_sums, sigma_cov = privacy.noise_scales()
    rng = np.random.default_rng(privacy.random_state)

    G = _noisy_symmetric(dtc.T @ dtc, sigma_sums, rng)
    b = dtc.T @ ytc + rng.normal(scale=sigma_sums, size=p)
    n = float(n_rows + rng.normal(scale=sigma_sums))
    eig = np.linalg.eigvalsh(G)
    # The noise's variance enters the covariance by linearizing G^-1 b, valid only while G is
    # well above its noise (whose spectral norm is about 2 sigma sqrt(p)).
    if not (eig[0] > 2.0 * sigma_sums * np.sqrt(p) and n > p):
        raise ArgumentError("privacy", f"site {site!r}: at epsilon = {privacy.epsilon:g} the noise "
                            f"(sd {sigma_sums:.3g}) swamps sum Dt Dt' (smallest noisy eigenvalue "
                            f"{eig[0]:.3g}); raise epsilon or release the summary without privacy")
    theta = np.linalg.solve(G, b)

    resid = np.clip(ytc - dtc @ theta, -privacy.outcome_bound, privacy.outcome_bound)
    psi = dtc * resid[:, None]
    S = _noisy_symmetric(psi.T @ psi, sigma_cov, rng)
    # Post-processing keeps the guarantee: a score covariance no smaller than the noise's floor.
    w, U = np.linalg.eigh(0.5 * (S + S.T))
    S = (U * np.maximum(w, max(sigma_cov, 1e-12 * abs(w[-1])))) @ U.T

    Ginv = np.linalg.inv(G)
    V_noise = Ginv @ (sigma_sums**2 * np.eye(p) + _g_noise_cov(theta, sigma_sums)) @ Ginv
    J = -G / n
    Omega = S / n + n * J @ V_noise @ J.T
    # The exact number of clusters would change with one added row in a new cluster: not released.
    meta = {**(metadata or {}), "privacy": privacy.to_metadata((sigma_sums, sigma_cov))}
    if meta.get("n_clusters") is not None:
        meta["n_clusters"] = None
    meta.pop("n_folds", None)
    out = SiteSummary(theta=theta, J=J, Omega=0.5 * (Omega + Omega.T), n=n, site=site, model=model,
                      coef_names=coef_names, metadata=meta)
    if policy is not None:
        policy.record_release("site_summary", privacy.epsilon)
    return out
