"""Nuisance fusion: fuse the sites' kernel regressions on a shared grid, per cross-fitting fold.

Workflow (no row-level data leaves a site):

1. Sites agree on a :class:`~hetmtl.fusion.kernel_grid.KernelGrid` and candidate bandwidths.
2. Each site fixes its sample split and sends a :class:`~hetmtl.fusion.grid_summary.GridSummary`.
3. The center runs :class:`NuisanceFusion`: for every nuisance and fold f it fuses the sites'
   training-fold fits (all folds but f) on the grid,

       minimize  sum_k (1/2) sum_g c_kg (a_kg - ahat_kg)^2 + lam * sum_k w_k pen(a_k - a_0)

   where ``ahat_kg`` is site k's local fit at grid point g and ``c_kg`` its curvature (S0 for
   local constant; the local-linear Schur complement), ``w_k = sqrt(n_k)``, and ``pen`` the l2
   norm over the whole grid function (``penalty="function"``) or the l1 norm (one scalar fused
   problem per grid point, ``penalty="pointwise"``). The bandwidth and lambda are chosen by
   summary-level cross-validation on the held-out folds' kernel sums.
4. Each site receives its :class:`FusedNuisance` and predicts the rows of fold f with the
   function fused without fold f (:meth:`FusedNuisance.predictions`), then runs
   ``SiteDML.fit(..., folds=folds, predictions=...)``: cross-fitting stays intact.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .. import _core
from .._core_status import check_fused
from .._util.display import ReportDisplay
from .._util.io import atomic_write_json, read_json
from .._util.validation import (ArgumentError, as_float_array, check_choice, check_fraction,
                                check_int, check_number)
from ..persist.mixin import Persistable, SchemaPersistable
from .kernel_grid_core import GRID_PENALTIES
from .crossfit import single_split_labels
from .display import fused_nuisance_report, nuisance_fusion_report
from .grid_summary import GridSummary
from .kernel_grid import KernelGrid, local_fit
from .fused import make_options

FUSED_SCHEMA = "hetmtl.fused_nuisance"
FUSED_SCHEMA_VERSION = 1
#: A site that releases less than this share of the grid points at the chosen bandwidth is
#: named in a :class:`WithheldGridWarning`.
MIN_RELEASED_SHARE = 0.5


class WithheldGridWarning(UserWarning):
    """At the chosen bandwidth, a site released fewer than half of the grid points.

    The disclosure rule withholds a grid point where a fold has too few rows near it. Where a
    site withheld a point, its fused function takes the center's value there (or the nearest
    released point's), not its own kernel fit, however different the site is: with most points
    withheld, the site's fused nuisance says little about its own data. The warning names each
    such site with its count of released points; :attr:`NuisanceFusion.n_released_` holds the
    counts of every site. Remedies: larger candidate bandwidths, fewer folds, or a coarser grid
    over the region where the site has rows.
    """


@dataclass(frozen=True)
class _FoldProblem:
    """One nuisance, one bandwidth, one fold: the sites' training fits and held-out sums."""

    value: np.ndarray       # (K, G) local fits on the training folds
    curvature: np.ndarray   # (K, G) 0 where missing
    n_train: np.ndarray     # (K,)


def _fold_problem(sums: list, b: int, f: int) -> _FoldProblem:
    """Training-fold (all folds but f) local fits of every site at bandwidth b."""
    M = np.stack([s.M[b].sum(0) - s.M[b, f] for s in sums])      # (K, G, P, P)
    V = np.stack([s.V[b].sum(0) - s.V[b, f] for s in sums])      # (K, G, P)
    value, curv = local_fit(M, V[..., None])
    released = np.stack([s.released[b] for s in sums])
    n_train = np.array([s.n_rows.sum() - s.n_rows[f] for s in sums])
    return _FoldProblem(value[..., 0], np.where(released, curv, 0.0), n_train)


def _solve_path(pb: _FoldProblem, lambdas: np.ndarray, penalty: str, weights: np.ndarray | None,
                options) -> tuple[np.ndarray, np.ndarray]:
    """Fused site values (L, K, G) and centers (L, G) along ``lambdas``; NaN where no site has data."""
    K, G = pb.value.shape
    present = pb.curvature.max(axis=0) > 0
    n = pb.n_train.astype(float)
    w = np.sqrt(n) if weights is None else weights
    D = np.ascontiguousarray(pb.curvature / n[:, None])
    th = np.ascontiguousarray(pb.value)
    L = lambdas.size
    theta = np.full((L, K, G), np.nan)
    center = np.full((L, G), np.nan)
    if penalty == "function":
        core = _core.FusedProblem.diagonal(np.ascontiguousarray(D[:, present]), n, w, True)
        thp = np.ascontiguousarray(th[:, present])
        out = core.path(thp, [float(x) for x in lambdas], options)
        check_fused(out.status, out.kkt, lambdas)
        theta[:, :, present] = out.theta
        center[:, present] = out.center
    else:
        for i, lam in enumerate(lambdas):
            out = _core.fused_pointwise(D, th, n, w, float(lam), options)
            check_fused(out.status[present], out.kkt[present], np.full(int(present.sum()), lam))
            theta[i], center[i] = out.theta, out.center
    # A site without released data at a grid point takes the center's value there.
    theta = np.where(np.isnan(theta) | (pb.curvature[None] > 0), theta, center[:, None, :])
    return theta, center


def _lambda_max(pb: _FoldProblem, weights: np.ndarray | None) -> float:
    present = pb.curvature.max(axis=0) > 0
    n = pb.n_train.astype(float)
    w = np.sqrt(n) if weights is None else weights
    D = np.ascontiguousarray((pb.curvature / n[:, None])[:, present])
    core = _core.FusedProblem.diagonal(D, n, w, True)
    return float(core.lambda_max(np.ascontiguousarray(pb.value[:, present])))


def _fill_missing(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Give grid points without any value (NaN columns) the value of the nearest point that has one."""
    miss = np.isnan(values).any(axis=0)
    if not miss.any() or miss.all():
        return values
    have = np.flatnonzero(~miss)
    dist = ((points[miss, None, :] - points[None, have, :]) ** 2).sum(-1)
    out = values.copy()
    out[:, miss] = values[:, have[np.argmin(dist, axis=1)]]
    return out


class NuisanceFusion(ReportDisplay, Persistable):
    """Fuse the sites' nuisance functions from their grid summaries.

    Parameters
    ----------
    lam : float or "cv", default "cv"
        Penalty level; ``"cv"`` picks it (with the bandwidth) by summary-level cross-validation
        over ``n_lambda`` values from each problem's ``lambda_max`` down to
        ``lambda_ratio * lambda_max``, plus 0 (each site's own fit).
    penalty : {"function", "pointwise"}, default "function"
        Group l2 penalty over the whole grid function (a site is fused as a whole or not), or one
        l1 penalty per grid point (local similarity).
    n_lambda : int, default 12
    lambda_ratio : float, default 1e-3
    weights : array_like of shape (K,), optional
        Penalty weights ``w_k`` (default ``sqrt`` of each site's training rows).
    tol, max_iter, n_threads
        Solver options.

    Attributes
    ----------
    sites_ : list of str
    grid_ : KernelGrid
    bandwidth_ : dict of str to ndarray of shape (d,)
        Chosen bandwidth per nuisance.
    lam_ : dict of str to float
        Penalty level per nuisance (the mean over folds when cross-validated: each fold uses the
        chosen fraction ``lambda_fraction_`` of its own ``lambda_max``).
    lambda_fraction_ : dict of str to float or None
        Chosen fraction of ``lambda_max`` (None when ``lam`` is a number).
    cv_loss_ : dict of str to ndarray of shape (B, L)
        Held-out loss per bandwidth and lambda position.
    values_ : dict of str to ndarray of shape (K, F, G)
        Fused grid values per site and fold (fold f's never saw any site's fold f).
    center_ : dict of str to ndarray of shape (F, G)
        The center function per fold.
    n_released_ : dict of str to ndarray of int of shape (K,)
        Grid points each site released at the chosen bandwidth; a site below half of the grid
        is named in a :class:`WithheldGridWarning`.

    Notes
    -----
    Cross-validation: for a candidate bandwidth and lambda, fold f's fused functions (fitted on
    all folds but f) are scored against fold f's kernel sums at the smallest candidate bandwidth,
    ``sum_k sum_g (S0_kg a_kg^2 - 2 S1_kg a_kg)`` (a kernel-smoothed held-out squared error,
    comparable across bandwidths because the scoring sums are the same for all of them).
    For ``lam="cv"`` lambda is searched as a fraction of each fold's ``lambda_max``.
    """

    def __init__(self, lam: float | str = "cv", penalty: str = "function", n_lambda: int = 12,
                 lambda_ratio: float = 1e-3, weights: Any = None, tol: float = 1e-9,
                 max_iter: int = 20000, n_threads: int = 1) -> None:
        self.lam = lam
        self.penalty = penalty
        self.n_lambda = n_lambda
        self.lambda_ratio = lambda_ratio
        self.weights = weights
        self.tol = tol
        self.max_iter = max_iter
        self.n_threads = n_threads

    def fit(self, summaries: Sequence[GridSummary]) -> "NuisanceFusion":
        """Fuse every nuisance that all sites sent.

        Parameters
        ----------
        summaries : sequence of GridSummary
            One per site, on the same grid, bandwidths and number of folds.

        Returns
        -------
        self
        """
        summaries, roles, weights = self._check_inputs(summaries)
        options = make_options("l2", self.tol, self.max_iter, self.n_threads)
        first = summaries[0]
        self.sites_, self.grid_, self.n_folds_ = [s.site for s in summaries], first.grid, first.n_folds
        self.binary_ = {}
        self.bandwidth_, self.lam_, self.cv_loss_, self.values_, self.center_ = {}, {}, {}, {}, {}
        self.lambda_fraction_, self.n_released_ = {}, {}
        for role in roles:
            sums = [s.nuisances[role] for s in summaries]
            self.binary_[role] = all(s.binary for s in sums)
            fit = self._fuse_role(sums, role, first.bandwidths, first.n_folds, first.grid.points,
                                  weights, options)
            self.bandwidth_[role], self.lam_[role], self.lambda_fraction_[role] = fit[:3]
            self.cv_loss_[role], self.values_[role], self.center_[role], self.n_released_[role] = fit[3:]
            _warn_withheld(role, self.sites_, self.n_released_[role], first.grid.n_points,
                           self.bandwidth_[role])
        return self

    def _check_inputs(self, summaries: Sequence[GridSummary]) -> tuple[list, list[str], Any]:
        """The options, the summaries (one grid, bandwidths and folds), the common nuisances and
        the site weights."""
        check_choice(self.penalty, "penalty", GRID_PENALTIES)
        if isinstance(self.lam, str):
            check_choice(self.lam, "lam", ("cv",))
        else:
            check_number(self.lam, "lam", low=0)
        check_int(self.n_lambda, "n_lambda", minimum=2)
        check_fraction(self.lambda_ratio, "lambda_ratio")
        summaries = list(summaries)
        if len(summaries) == 0:
            raise ArgumentError("summaries", "needs at least one site")
        for k, s in enumerate(summaries):
            if not isinstance(s, GridSummary):
                raise ArgumentError(f"summaries[{k}]", f"expected a GridSummary, got {type(s).__name__}")
        first = summaries[0]
        for k, s in enumerate(summaries[1:], start=1):
            if not s.grid.same_as(first.grid):
                raise ArgumentError(f"summaries[{k}]", f"site {s.site!r} used a different grid or kernel")
            if not np.array_equal(s.bandwidths, first.bandwidths):
                raise ArgumentError(f"summaries[{k}]", f"site {s.site!r} used different candidate "
                                                       "bandwidths")
            if s.n_folds != first.n_folds:
                raise ArgumentError(f"summaries[{k}]", f"site {s.site!r} has {s.n_folds} folds, site "
                                                       f"{first.site!r} has {first.n_folds}")
        sites = [s.site for s in summaries]
        if len(set(sites)) != len(sites):
            raise ArgumentError("summaries", "site names must be unique")
        roles = [r for r in first.nuisances if all(r in s.nuisances for s in summaries)]
        if not roles:
            raise ArgumentError("summaries", "no nuisance is present at every site")
        weights = None
        if self.weights is not None:
            weights = as_float_array(self.weights, "weights", ndim=1)
            if weights.shape != (len(sites),) or np.any(weights <= 0):
                raise ArgumentError("weights", f"expected {len(sites)} positive values")
        return summaries, roles, weights

    def _fuse_role(self, sums: list, role: str, H: np.ndarray, F: int, points: np.ndarray,
                   weights: Any, options: Any) -> tuple:
        """One nuisance: the cross-validated bandwidth and lambda, then the fused functions of
        every fold (fitted without that fold). Returns bandwidth, lambda, lambda fraction, the
        loss table, the site values (K, F, G), the center (F, G) and the grid points each site
        released at the chosen bandwidth (K,)."""
        b_eval = _scoring_bandwidth(sums, H, role)
        fractions = (np.append(np.geomspace(1.0, self.lambda_ratio, int(self.n_lambda)), 0.0)
                     if self.lam == "cv" else None)
        loss = np.zeros((H.shape[0], 1 if fractions is None else fractions.size))
        problems = {}
        for b in range(H.shape[0]):
            for f in range(F):
                pb = _fold_problem(sums, b, f)
                if not (pb.curvature.max(axis=0) > 0).any():
                    loss[b] = np.inf  # nothing released at this bandwidth
                    break
                problems[b, f] = pb
                lams = (np.array([float(self.lam)]) if fractions is None
                        else fractions * _lambda_max(pb, weights))
                theta, _ = _solve_path(pb, lams, self.penalty, weights, options)
                loss[b] += _heldout_loss(theta, sums, b_eval, f)
        b_best, l_best = np.unravel_index(np.argmin(loss), loss.shape)
        K = len(sums)
        vals = np.empty((K, F, points.shape[0]))
        cent = np.empty((F, points.shape[0]))
        lam_used = []
        for f in range(F):
            pb = problems[b_best, f]
            lam = (float(self.lam) if fractions is None
                   else float(fractions[l_best] * _lambda_max(pb, weights)))
            theta, center = _solve_path(pb, np.array([lam]), self.penalty, weights, options)
            both = _fill_missing(np.vstack([theta[0], center[0][None]]), points)
            vals[:, f], cent[f] = both[:K], both[K]
            lam_used.append(lam)
        if all(s.binary for s in sums):
            vals, cent = np.clip(vals, 0.0, 1.0), np.clip(cent, 0.0, 1.0)
        fraction = None if fractions is None else float(fractions[l_best])
        n_released = np.stack([s.released[b_best] for s in sums]).sum(axis=1)
        return H[b_best].copy(), float(np.mean(lam_used)), fraction, loss, vals, cent, n_released

    def _display_report(self):
        return nuisance_fusion_report(self)

    def result(self, site: str) -> "FusedNuisance":
        """What the center sends back to ``site``: its fused functions on the grid, per fold."""
        if not hasattr(self, "values_"):
            raise ArgumentError("NuisanceFusion", "call fit first")
        if site not in self.sites_:
            raise ArgumentError("site", f"unknown site {site!r}; known: {self.sites_}")
        k = self.sites_.index(site)
        return FusedNuisance(site=site, grid=self.grid_,
                             values={r: v[k] for r, v in self.values_.items()},
                             binary=dict(self.binary_),
                             metadata={"penalty": self.penalty,
                                       "lam": dict(self.lam_),
                                       "bandwidth": {r: h.tolist() for r, h in self.bandwidth_.items()},
                                       "n_sites": len(self.sites_)})


def _warn_withheld(role: str, sites: list[str], n_released: np.ndarray, n_points: int,
                   bandwidth: np.ndarray) -> None:
    """One :class:`WithheldGridWarning` naming every site that released few grid points."""
    few = np.flatnonzero(n_released < MIN_RELEASED_SHARE * n_points)
    if few.size == 0:
        return
    counts = ", ".join(f"site {sites[k]!r} {n_released[k]} of {n_points}" for k in few)
    warnings.warn(f"nuisance {role!r}, chosen bandwidth {np.round(bandwidth, 4).tolist()}: most grid "
                  f"points withheld by the disclosure rule ({counts} released); at a withheld point "
                  "the site's fused function is the center's (or the nearest released point's), "
                  "not its own kernel fit. Larger bandwidths, fewer folds or a grid over the "
                  "sites' data release more points",
                  WithheldGridWarning, stacklevel=3)


def _scoring_bandwidth(sums: list, H: np.ndarray, role: str) -> int:
    """The smallest candidate bandwidth at which some site released a grid point.

    Held-out losses of all candidates are scored on the same sums, so that they compare; the
    smallest bandwidth is closest to a pointwise squared error, but at small sites the disclosure
    rule can withhold every point there, and sums that are all zeros would score every candidate
    alike.
    """
    any_released = np.stack([s.released for s in sums]).any(axis=(0, 2))    # (B,)
    if not any_released.any():
        raise ArgumentError("summaries", f"no site released any grid point of {role!r} at any "
                                         "candidate bandwidth (too few rows per fold for the "
                                         "disclosure threshold); use larger bandwidths or fewer folds")
    usable = np.flatnonzero(any_released)
    return int(usable[np.argmin(np.prod(H[usable], axis=1))])


def _heldout_loss(theta: np.ndarray, sums: list, b_eval: int, f: int) -> np.ndarray:
    """sum_k sum_g (S0 a^2 - 2 S1 a) on fold f's released sums, per lambda (L,)."""
    S0 = np.stack([s.M[b_eval, f, :, 0, 0] for s in sums])
    S1 = np.stack([s.V[b_eval, f, :, 0] for s in sums])
    a = np.nan_to_num(theta, nan=0.0)
    return np.einsum("kg,lkg->l", S0, a * a) - 2.0 * np.einsum("kg,lkg->l", S1, a)


@dataclass(frozen=True, repr=False)
class FusedNuisance(ReportDisplay, SchemaPersistable):
    """A site's fused nuisance functions: values on the grid per fold, and how to predict.

    Attributes
    ----------
    site : str
    grid : KernelGrid
    values : dict of str to ndarray of shape (F, G)
        Fold f's function never saw the site's fold f.
    binary : dict of str to bool
        Whether a nuisance is a probability (predictions are then kept in [0, 1]).
    metadata : dict
    """

    site: str
    grid: KernelGrid
    values: dict[str, np.ndarray]
    binary: dict[str, bool] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def predict(self, role: str, X, folds: Any) -> np.ndarray:
        """Out-of-fold predictions of one nuisance at the site's rows.

        Parameters
        ----------
        role : str
            Nuisance name (``"ml_l"``, ``"ml_m"``, ...).
        X : array_like of shape (n, d)
            The site's covariates (the same rows and order as for its grid summary).
        folds : list of ndarray or ndarray of int
            The site's sample split (as given to :meth:`GridSummary.compute`).

        Returns
        -------
        ndarray of shape (n,)
        """
        if role not in self.values:
            raise ArgumentError("role", f"no fused nuisance {role!r}; available: {sorted(self.values)}")
        x = self.grid.prepare_points(X)
        labels, F = single_split_labels(folds, x.shape[0])
        vals = self.values[role]
        if F != vals.shape[0]:
            raise ArgumentError("folds", f"{F} folds, but the fused nuisance has {vals.shape[0]}")
        out = np.empty(x.shape[0])
        for f in range(F):  # a handful of folds; each is one interpolation call
            rows = labels == f
            out[rows] = self.grid.interpolate(vals[f], x[rows])
        return np.clip(out, 0.0, 1.0) if self.binary.get(role, False) else out

    def _display_report(self):
        return fused_nuisance_report(self)

    def predictions(self, X, folds: Any) -> dict[str, np.ndarray]:
        """Out-of-fold predictions of every nuisance, ready for ``SiteDML.fit(predictions=...)``."""
        return {role: self.predict(role, X, folds) for role in self.values}

    # ------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (versioned schema)."""
        return {"schema": FUSED_SCHEMA, "schema_version": FUSED_SCHEMA_VERSION, "site": self.site,
                "grid": self.grid.to_dict(), "values": {r: v.tolist() for r, v in self.values.items()},
                "binary": dict(self.binary), "metadata": self.metadata}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FusedNuisance":
        """Inverse of :meth:`to_dict`."""
        if not isinstance(d, dict) or d.get("schema") != FUSED_SCHEMA:
            raise ValueError("fused nuisance: not a hetmtl fused nuisance file")
        if d.get("schema_version") != FUSED_SCHEMA_VERSION:
            raise ValueError(f"fused nuisance: unsupported schema_version {d.get('schema_version')!r}")
        grid = KernelGrid.from_dict(d["grid"])
        values = {}
        for r, v in d["values"].items():
            arr = as_float_array(v, f"values[{r!r}]", ndim=2)
            if arr.shape[1] != grid.n_points:
                raise ArgumentError(f"values[{r!r}]", f"expected {grid.n_points} grid values per fold")
            values[r] = arr
        return cls(site=str(d["site"]), grid=grid, values=values,
                   binary={r: bool(b) for r, b in d.get("binary", {}).items()},
                   metadata=dict(d.get("metadata", {})))

    def to_json(self, path: str | os.PathLike) -> None:
        """Write as versioned JSON, atomically."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "FusedNuisance":
        """Load a file written by :meth:`to_json`."""
        return cls.from_dict(read_json(path))
