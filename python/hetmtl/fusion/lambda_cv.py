"""Summary-level cross-validation of the fusion penalty.

Each site sends per-fold summaries. For held-out fold f, every site's estimate and weight with fold
f left out are rebuilt from the other folds' summaries, the fused problem is solved along the
lambda grid, and the fit is scored against the held-out fold's own estimate:

    CV_f(lambda) = sum_k n_k^(f) (theta_k^(-f)(lambda) - theta_hat_k^(f))' W_k^(f)
                                 (theta_k^(-f)(lambda) - theta_hat_k^(f))

The penalty weights are ``sqrt(n_k)``, which carries the sample-size scaling, so the same lambda
is meaningful for the fold-excluded fits and for the full fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .fused import path_prepared, prepare_problem
from .summary import SiteSummary


@dataclass(frozen=True)
class LambdaCV:
    """Cross-validation curve over the lambda grid.

    Attributes
    ----------
    lambdas : ndarray
        The grid (decreasing).
    score : ndarray
        Mean held-out loss per lambda (per held-out observation).
    score_se : ndarray
        Standard error of the mean over folds.
    fold_scores : ndarray of shape (n_folds, n_lambda)
        Held-out loss per fold.
    best_min : float
        Lambda minimizing the mean loss.
    best_1se : float
        Largest lambda whose mean loss is within one standard error of the minimum.
    """

    lambdas: np.ndarray
    score: np.ndarray
    score_se: np.ndarray
    fold_scores: np.ndarray
    best_min: float
    best_1se: float

    def to_frame(self) -> pd.DataFrame:
        """The curve as a DataFrame (lambda, cv score, its standard error)."""
        return pd.DataFrame({"lambda": self.lambdas, "cv_score": self.score, "cv_se": self.score_se})


def n_common_folds(summaries: Sequence[SiteSummary]) -> int:
    """Number of folds usable for cross-validation (0 when some site has no fold summaries)."""
    counts = [len(s.folds) for s in summaries]
    return min(counts) if counts else 0


def cross_validate_lambda(
    summaries: Sequence[SiteSummary],
    lambdas: np.ndarray,
    *,
    weight: str,
    penalty_weights: np.ndarray | None,
    options,
) -> LambdaCV:
    """Score every lambda of ``lambdas`` by summary-level cross-validation (see module notes).

    ``penalty_weights`` are the full-data weights divided by sqrt(n_k) (``None``: all ones), so that
    each fold-excluded fit uses ``sqrt(n_k^(-f))`` times the same factor.
    """
    n_folds = n_common_folds(summaries)
    if n_folds < 2:
        raise ValueError("summaries: cross-validation needs at least two fold summaries per site")
    K = len(summaries)
    factor = np.ones(K) if penalty_weights is None else np.asarray(penalty_weights, float)
    fold_scores = np.empty((n_folds, lambdas.size))
    for f in range(n_folds):
        train = [s.fold_excluded(f, weight) for s in summaries]
        theta_tr = np.stack([t[0] for t in train])
        W_tr = np.stack([t[1] for t in train])
        n_tr = np.array([t[2] for t in train])
        problem = prepare_problem(theta_tr, W_tr, n_tr, factor * np.sqrt(n_tr))
        path = path_prepared(problem, lambdas, options)
        held = [s.folds[f] for s in summaries]
        theta_ho = np.stack([h.theta for h in held])
        W_ho = np.stack([SiteSummary(h.theta, h.J, h.Omega, h.n).weight_matrix(weight) for h in held])
        n_ho = np.array([h.n for h in held], dtype=float)
        diff = path.theta - theta_ho[None]                      # (L, K, p)
        quad = np.einsum("lkp,kpq,lkq->lk", diff, W_ho, diff)   # (L, K)
        fold_scores[f] = (quad * n_ho[None]).sum(axis=1) / n_ho.sum()
    score = fold_scores.mean(axis=0)
    score_se = fold_scores.std(axis=0, ddof=1) / np.sqrt(n_folds)
    i_min = int(np.argmin(score))
    within = np.nonzero(score <= score[i_min] + score_se[i_min])[0]
    best_1se = float(lambdas[within].max())
    return LambdaCV(lambdas=lambdas, score=score, score_se=score_se, fold_scores=fold_scores,
                    best_min=float(lambdas[i_min]), best_1se=best_1se)


FALLBACK_RULE = "default C*sqrt(p) (in standard errors)"


def fallback_lambda_scale(summaries: Sequence[SiteSummary], weight: str) -> float:
    """Unit of the fallback penalty: ``sqrt(mean_k tr(W_k (n_k V_k) W_k) / p)``.

    At the fused solution a site moves by ``lam / sqrt(n_k)`` times ``W_k^-1`` applied to a unit
    vector. For one coefficient with precision weights that is ``lam`` times the site's
    per-observation SD in units of its standard error, and this scale is the root mean inverse
    per-observation variance. Multiplying ``C sqrt(p)`` by it gives a penalty that moves a site
    by about ``C sqrt(p)`` standard errors (exactly when the sites' per-observation variances
    agree) whatever the units of the outcome; it is one for summaries of unit per-observation
    variance.
    """
    p = summaries[0].dim
    spread = [W @ (s.n * s.cov) @ W.T for s in summaries for W in [s.weight_matrix(weight)]]
    return float(np.sqrt(np.mean([np.trace(m) for m in spread]) / p))
