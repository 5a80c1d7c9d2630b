"""What the best possible estimator could do on the late-fusion panel: Bayes rules that know the prior.

The oracle is the posterior mean under a prior that knows what kinds of designs the panel holds,
written as a mixture of components ``(tau_j, eps_j)``: given the center ``mu`` (flat prior, so the
rule is location equivariant) each site is, independently, *normal* with probability
``1 - eps_j``, ``theta_k ~ N(mu, tau_j^2)``, or *outlying* with probability ``eps_j``,
``theta_k = mu + U(a, b) se_k`` (the panel's outliers: shifted up by ``U(3, 6)`` of their own
standard errors). Heterogeneity ``tau_j`` is in typical site standard errors, as in the panel.
Two priors are used:

- *design known*: the single component of the design being evaluated (its tau, its outlier
  share), but not which sites are outlying nor ``mu``;
- *panel prior*: the panel's kinds at this K equally likely (identical sites, tau = 0.5, 1, 1.5,
  20% outliers), without being told which one holds;
- *design known, two-sided*: as the first, but outliers may lie above or below the center (the
  direction is not known, as for any method that is not told it).

Given ``mu`` and the component the sites are independent, so the posterior over ``(component,
mu)`` is a product of per-site mixture densities, evaluated on a grid of ``mu``; each site's
posterior mean given ``(component, mu)`` is closed form (normal shrinkage, or the mean of a
normal truncated to the shift interval). Everything is vectorized over replications, components,
the ``mu`` grid and sites.

The posterior mean minimizes the expected total squared error under its prior. Loss weights
trace the trade-offs: ``outlier_weight`` counts an outlying site's squared error that many times
(the Bayes rule then minimizes ``normal risk + w outlier risk``), and the prior weight of the
identical-sites component trades homogeneous designs against heterogeneous ones. A Bayes rule
for a weighted loss minimizes that weighted risk over *all* estimators, so if its weighted risk
exceeds the same weighting of the targets, no estimator meets the targets jointly (for the
outlying share and placement of the prior: the oracle, like every method of the panel, is not
told which sites are outlying).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.special import log_ndtr, logsumexp

from ..fusion.blup import random_effects
from ..fusion.robust_eb import robust_eb
from ..simulate.summary_level import SummaryDesign, draw_effects, draw_estimates
from .late_fusion_panel import DESIGNS

# Points of the mu grid: at least ten per posterior SD of mu in the panel's designs (a finer grid
# moves the estimates by less than 1e-12 SEs).
MU_GRID = 500
BATCH = 20
LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)


@dataclass(frozen=True)
class OraclePrior:
    """Mixture prior of the oracle (see module notes).

    Attributes
    ----------
    taus : sequence of float
        Between-site SD of the normal sites per component, in typical site SEs.
    eps : sequence of float
        Outlying share per component.
    weights : sequence of float
        Prior weight of each component.
    shift : tuple of float
        Outliers lie ``U(shift)`` of their own SEs above the center.
    outlier_weight : float
        Loss weight of an outlying site's squared error.
    two_sided : bool
        Outliers lie above or below the center with equal probability (the direction unknown).
    """

    taus: Sequence[float]
    eps: Sequence[float]
    weights: Sequence[float]
    shift: tuple[float, float] = (3.0, 6.0)
    outlier_weight: float = 1.0
    two_sided: bool = False


def _log_trunc_mass(z: np.ndarray, a: float, b: float) -> np.ndarray:
    """``log(Phi(b - z) - Phi(a - z))``, from the side where the two tails do not cancel."""
    low = z < 0.5 * (a + b)
    big = np.where(low, log_ndtr(z - a), log_ndtr(b - z))
    small = np.where(low, log_ndtr(z - b), log_ndtr(a - z))
    return big + np.log1p(-np.exp(np.minimum(small - big, -1e-300)))


def _outlier_parts(z: np.ndarray, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Log density (in SE units) of a standardized deviation ``z`` for an outlier ``U(a, b)`` SEs
    up, and the posterior mean of its shift: the mean of N(z, 1) truncated to [a, b]."""
    log_mass = _log_trunc_mass(z, a, b)
    mean_u = z + np.exp(-LOG_SQRT_2PI - 0.5 * (a - z) ** 2 - log_mass) \
        - np.exp(-LOG_SQRT_2PI - 0.5 * (b - z) ** 2 - log_mass)
    return log_mass - np.log(b - a), np.clip(mean_u, a, b)


def oracle_estimate(y: np.ndarray, v: np.ndarray, prior: OraclePrior, typical_se: float
                    ) -> np.ndarray:
    """Posterior means (weighted by ``prior.outlier_weight``) of the site effects, shape (B, K)."""
    return np.concatenate([_oracle_batch(y[i:i + BATCH], v[i:i + BATCH], prior, typical_se)
                           for i in range(0, y.shape[0], BATCH)])


def _oracle_batch(y, v, prior: OraclePrior, typical_se: float) -> np.ndarray:
    se = np.sqrt(v)
    span = 3.0 * se.max(axis=1)
    grid = np.linspace(0, 1, MU_GRID)[None, :]
    mu = (y.min(axis=1) - span)[:, None] + grid * (np.ptp(y, axis=1) + 2 * span)[:, None]
    tau2 = (np.asarray(prior.taus, float) * typical_se) ** 2
    eps = np.asarray(prior.eps, float)
    # Axes: (batch, component, mu grid, site).
    yk, vk, sk = y[:, None, None, :], v[:, None, None, :], se[:, None, None, :]
    m = mu[:, None, :, None]
    s_n = vk + tau2[None, :, None, None]
    log_n = -LOG_SQRT_2PI - 0.5 * np.log(s_n) - 0.5 * (yk - m) ** 2 / s_n
    a, b = prior.shift
    z = (yk - m) / sk
    log_o, mean_o = _outlier_parts(z, a, b)
    if prior.two_sided:
        log_down, mean_down = _outlier_parts(-z, a, b)
        up = 1.0 / (1.0 + np.exp(log_down - log_o))
        log_o = np.logaddexp(log_o, log_down) - np.log(2.0)
        mean_o = up * mean_o - (1.0 - up) * mean_down
    log_o = log_o - np.log(sk)
    mean_o = m + sk * mean_o
    e = eps[None, :, None, None]
    with np.errstate(divide="ignore"):
        lw_n, lw_o = np.log1p(-e) + log_n, np.log(e) + log_o
    site_ll = np.logaddexp(lw_n, lw_o)
    log_post = np.log(np.asarray(prior.weights, float))[None, :, None] + site_ll.sum(axis=3)
    post = np.exp(log_post - logsumexp(log_post, axis=(1, 2), keepdims=True))[..., None]
    p_n, p_o = np.exp(lw_n - site_ll), np.exp(lw_o - site_ll)
    mean_n = m + tau2[None, :, None, None] / s_n * (yk - m)
    w = prior.outlier_weight
    num = (post * (p_n * mean_n + w * p_o * mean_o)).sum(axis=(1, 2))
    den = (post * (p_n + w * p_o)).sum(axis=(1, 2))
    return num / den


def panel_prior(outlier_weight: float = 1.0,
                homogeneous_weight: float = 0.2) -> OraclePrior:
    """The panel prior: identical sites (weight ``homogeneous_weight``), tau = 0.5, 1, 1.5 and
    20% outliers at 3-6 SEs sharing the rest equally."""
    rest = (1.0 - homogeneous_weight) / 4
    return OraclePrior(taus=(0.0, 0.5, 1.0, 1.5, 0.0), eps=(0.0, 0.0, 0.0, 0.0, 0.2),
                       weights=(homogeneous_weight, rest, rest, rest, rest),
                       outlier_weight=outlier_weight)


def design_prior(design: SummaryDesign, outlier_weight: float = 1.0,
                 two_sided: bool = False) -> OraclePrior:
    """The design's own component (its tau and outlier share, placement and mu unknown)."""
    if design.kind == "clusters":
        raise ValueError("design: clusters have no one-component prior")
    eps = design.outlier_frac if design.kind == "outliers" else 0.0
    return OraclePrior(taus=(design.tau,), eps=(eps,), weights=(1.0,),
                       shift=(design.shift_low, design.shift_high), outlier_weight=outlier_weight,
                       two_sided=two_sided)


def oracle_rows(design: SummaryDesign, priors: dict[str, OraclePrior], n_reps: int, seed: int,
                label: str) -> list[dict]:
    """Per-site MSE ratios of each oracle and of robust EB in ``design`` (paired replications).

    Normal sites are reported over the best of own DML, pooling and BLUP (DL, REML) and over the
    better BLUP; outlying sites over their own DML.
    """
    rng = np.random.default_rng(seed)
    theta, outlier = draw_effects(design, n_reps, rng)
    y, _ = draw_estimates(design, theta, rng)
    v = np.broadcast_to(1.0 / design.sizes, y.shape).copy()

    def mse(est, mask):
        return float(np.mean(((est - theta) ** 2)[mask])) if mask.any() else np.nan

    comp = {"own": y, "fixed": random_effects(y, v, tau2=np.zeros(n_reps)).blup,
            "blup_dl": random_effects(y, v, method="DL").blup,
            "blup_reml": random_effects(y, v, method="REML").blup}
    best = min(mse(e, ~outlier) for e in comp.values())
    blup = min(mse(comp[m], ~outlier) for m in ("blup_dl", "blup_reml"))
    own_out = mse(y, outlier)
    rules = {"robust_eb": robust_eb(y, v).estimate,
             **{name: oracle_estimate(y, v, p, design.typical_se) for name, p in priors.items()}}
    return [{"design": label, "rule": name, "normal_over_best": mse(est, ~outlier) / best,
             "normal_over_blup": mse(est, ~outlier) / blup,
             "outlier_over_own": mse(est, outlier) / own_out if outlier.any() else np.nan}
            for name, est in rules.items()]


ORACLE_DESIGNS = ("homog_K10", "homog_K20", "normal_tau0.5_K10", "normal_tau1_K10",
                  "normal_tau1.5_K10", "outliers_small_K10", "outliers_large_K10",
                  "outliers_small_K20", "outliers_large_K20")
HOMOGENEOUS_WEIGHTS = (0.2, 0.5, 0.8, 0.95)
OUTLIER_WEIGHTS = (1.0, 2.0, 4.0, 8.0)


def _design(name: str) -> SummaryDesign:
    # homog_K10 is not a panel design: identical sites with the K = 10 layout of the
    # heterogeneous designs, so that one panel prior covers all of them.
    spec = {"kind": "homogeneous", "n_sites": 10} if name == "homog_K10" else DESIGNS[name]
    return SummaryDesign(**spec)


def oracle_table(n_reps: int = 1000, seed: int = 11,
                 designs: Sequence[str] = ORACLE_DESIGNS) -> pd.DataFrame:
    """Robust EB against the oracles in every design: the design-known Bayes rule, the panel
    prior with several weights on identical sites, and with outliers' loss counted several times."""
    rows = []
    for i, name in enumerate(designs):
        design = _design(name)
        priors = {"design_known": design_prior(design)}
        priors.update({f"panel_h{h:g}": panel_prior(homogeneous_weight=h)
                       for h in HOMOGENEOUS_WEIGHTS})
        if design.kind == "outliers":
            priors.update({f"design_known_w{w:g}": design_prior(design, outlier_weight=w)
                           for w in OUTLIER_WEIGHTS[1:]})
            priors["panel_h0.2_w4"] = panel_prior(outlier_weight=4.0)
            priors.update({f"design_two_sided_w{w:g}": design_prior(design, w, two_sided=True)
                           for w in OUTLIER_WEIGHTS})
        rows += oracle_rows(design, priors, n_reps, seed + i, name)
    return pd.DataFrame(rows).set_index(["design", "rule"])
