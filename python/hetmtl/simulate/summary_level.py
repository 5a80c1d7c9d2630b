"""Summary-level simulation of site estimates: what the center of late fusion sees.

Each site k has a true effect ``theta_k`` and reports ``theta_hat_k ~ N(theta_k, 1 / n_k)`` (a
per-observation variance of one), optionally split into cross-fitting folds (fold estimates
``N(theta_k, 1 / n_kf)`` whose size-weighted mean is the site estimate), so that the penalized
late fusion can cross-validate its penalty. Heterogeneity is measured in units of the typical
site standard error ``s = sqrt(mean_k 1 / n_k)``.

Designs (``kind``):

- ``"homogeneous"``: every ``theta_k = theta0``;
- ``"outliers"``: a share ``outlier_frac`` of the sites (the smallest or the largest, by
  ``placement``) are shifted up by ``U(shift_low, shift_high)`` of their *own* standard errors;
- ``"normal"``: ``theta_k = theta0 + tau s Z_k``;
- ``"clusters"``: the larger-indexed half of the sites is shifted by ``gap`` typical SEs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("homogeneous", "outliers", "normal", "clusters")
PLACEMENTS = ("smallest", "largest", "random")


@dataclass(frozen=True)
class SummaryDesign:
    """One design of the summary-level panel (see the module notes)."""

    kind: str
    n_sites: int
    n_min: float = 100.0
    n_max: float = 1000.0
    tau: float = 0.0
    outlier_frac: float = 0.2
    shift_low: float = 3.0
    shift_high: float = 6.0
    placement: str = "largest"
    gap: float = 4.0
    theta0: float = 0.3

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {self.kind!r}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement: expected one of {PLACEMENTS}, got {self.placement!r}")
        if int(self.n_sites) != self.n_sites or self.n_sites < 2:
            raise ValueError(f"n_sites: must be an integer >= 2, got {self.n_sites!r}")
        if not 0 < self.n_min <= self.n_max:
            raise ValueError(f"n_min, n_max: need 0 < n_min <= n_max, got {self.n_min}, {self.n_max}")
        if not 0 <= self.outlier_frac < 1:
            raise ValueError(f"outlier_frac: must lie in [0, 1), got {self.outlier_frac!r}")

    @property
    def sizes(self) -> np.ndarray:
        """Site sizes, geometrically spaced from ``n_min`` to ``n_max`` (sorted, smallest first)."""
        return np.round(np.geomspace(self.n_min, self.n_max, self.n_sites))

    @property
    def typical_se(self) -> float:
        return float(np.sqrt(np.mean(1.0 / self.sizes)))

    def outlier_mask(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """Which sites are outlying (all False unless ``kind == "outliers"``)."""
        K = self.n_sites
        mask = np.zeros(K, bool)
        if self.kind != "outliers":
            return mask
        m = max(1, int(round(self.outlier_frac * K)))
        if self.placement == "smallest":
            mask[:m] = True
        elif self.placement == "largest":
            mask[K - m:] = True
        else:
            mask[(rng or np.random.default_rng()).choice(K, m, replace=False)] = True
        return mask


def draw_effects(design: SummaryDesign, n_reps: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """True effects ``(n_reps, K)`` and the outlier mask ``(n_reps, K)`` of a design."""
    K = design.n_sites
    theta = np.full((n_reps, K), float(design.theta0))
    se = 1.0 / np.sqrt(design.sizes)
    s = design.typical_se
    outlier = np.stack([design.outlier_mask(rng) for _ in range(n_reps)]) \
        if design.placement == "random" else np.broadcast_to(design.outlier_mask(), (n_reps, K)).copy()
    if design.kind == "outliers":
        shift = rng.uniform(design.shift_low, design.shift_high, (n_reps, K)) * se
        theta += np.where(outlier, shift, 0.0)
    elif design.kind == "normal":
        theta += design.tau * s * rng.standard_normal((n_reps, K))
    elif design.kind == "clusters":
        theta[:, K // 2:] += design.gap * s
    return theta, outlier


def draw_estimates(design: SummaryDesign, theta: np.ndarray, rng: np.random.Generator,
                   n_folds: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Site estimates ``(n_reps, K)`` and, with ``n_folds >= 2``, fold estimates
    ``(n_reps, K, n_folds)`` whose size-weighted mean they are (fold sizes ``n_k / n_folds``)."""
    n = design.sizes
    if n_folds < 2:
        return theta + rng.standard_normal(theta.shape) / np.sqrt(n), np.empty(theta.shape + (0,))
    n_fold = n / n_folds
    folds = theta[..., None] + rng.standard_normal(theta.shape + (n_folds,)) / np.sqrt(n_fold)[:, None]
    return folds.mean(axis=2), folds
